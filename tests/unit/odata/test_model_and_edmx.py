"""The OData model of a form and its service and metadata documents: Central's names for
tables, types and join ids, and an EDMX that parses and matches the form."""

from __future__ import annotations

import pytest
from lxml import etree

from server.odata.edmx import EDM_NS, EDMX_NS, metadata_document, service_document
from server.odata.model import ODataModel, identifier
from tests.unit.odata.forms import DOUBLE_REPEAT, FEED, schema_of

E = {"edm": EDM_NS, "edmx": EDMX_NS}


@pytest.fixture(scope="module")
def model() -> ODataModel:
    return ODataModel.from_schema("feed", schema_of(FEED))


@pytest.mark.parametrize(("name", "expected"), [
    ("q1.8", "q1_8"), ("42", "_42"), ("2.4", "_2_4"), ("first-name", "first_name"),
    ("already_ok", "already_ok"), ("a..b", "a_b"), ("_x", "_x"),
])
def test_identifier__as_central_sanitizes(name, expected):
    assert identifier(name) == expected


def test_model__one_table_per_repeat_with_central_names(model):
    assert list(model.tables) == ["Submissions", "Submissions.household",
                                  "Submissions.household.trips", "Submissions.assets.animals"]
    assert model.namespace == "org.opendatakit.user.feed"
    assert model.tables["Submissions"].parent_id_name is None
    assert model.tables["Submissions.household"].parent_id_name == "__Submissions-id"
    assert model.tables["Submissions.household.trips"].parent_id_name == \
        "__Submissions-household-id"
    assert model.tables["Submissions.assets.animals"].parent_id_name == "__Submissions-id"
    root = [n.name for n in model.root.nodes]
    assert root[:3] == ["first_name", "age", "income"]
    assert "household" in root and "assets" in root and "meta" in root
    trips = model.tables["Submissions.household.trips"]
    assert [n.name for n in trips.nodes] == ["country"]
    assert model.descendants(model.tables["Submissions.household"]) == [trips]


def test_service_document__lists_every_entity_set(model):
    doc = service_document(model, "https://x.test/v1/projects/1/forms/feed.svc/$metadata")
    assert doc["@odata.context"].endswith("feed.svc/$metadata")
    assert [v["name"] for v in doc["value"]] == list(model.tables)
    assert all(v["kind"] == "EntitySet" and v["url"] == v["name"] for v in doc["value"])


def test_metadata__parses_and_matches_the_form(model):
    root = etree.fromstring(metadata_document(model))
    assert root.tag == f"{{{EDMX_NS}}}Edmx" and root.get("Version") == "4.0"
    schemas = root.findall("edmx:DataServices/edm:Schema", E)
    assert [s.get("Namespace") for s in schemas] == ["org.opendatakit.submission",
                                                     "org.opendatakit.user.feed"]
    system = schemas[0].find("edm:ComplexType[@Name='metadata']", E)
    assert [p.get("Name") for p in system] == [
        "submissionDate", "updatedAt", "deletedAt", "submitterId", "submitterName",
        "attachmentsPresent", "attachmentsExpected", "status", "reviewState", "deviceId",
        "edits", "formVersion"]
    user = schemas[1]

    def props(type_name: str, kind: str = "EntityType") -> dict[str, str]:
        el = user.find(f"edm:{kind}[@Name='{type_name}']", E)
        assert el is not None, type_name
        return {p.get("Name"): p.get("Type") for p in el
                if p.tag in (f"{{{EDM_NS}}}Property", f"{{{EDM_NS}}}NavigationProperty")}

    submissions = props("Submissions")
    assert submissions["__id"] == "Edm.String"
    assert submissions["__system"] == "org.opendatakit.submission.metadata"
    assert submissions["first_name"] == "Edm.String"
    assert submissions["age"] == "Edm.Int64"
    assert submissions["income"] == "Edm.Decimal"
    assert submissions["visit_date"] == "Edm.Date"
    assert submissions["visit_at"] == "Edm.DateTimeOffset"
    assert submissions["visit_time"] == "Edm.String"
    assert submissions["home"] == "Edm.GeographyPoint"
    assert submissions["route"] == "Edm.GeographyLineString"
    assert submissions["plot"] == "Edm.GeographyPolygon"
    assert submissions["languages"] == "Edm.String"
    assert submissions["photo"] == "Edm.String"
    assert submissions["work"] == "org.opendatakit.user.feed.work"
    assert submissions["household"] == \
        "Collection(org.opendatakit.user.feed.Submissions.household)"
    assert submissions["assets"] == "org.opendatakit.user.feed.assets"
    key = user.find("edm:EntityType[@Name='Submissions']/edm:Key/edm:PropertyRef", E)
    assert key.get("Name") == "__id"

    assert props("work", "ComplexType") == {"employer": "Edm.String",
                                            "contract": "org.opendatakit.user.feed.work.contract"}
    assert props("work.contract", "ComplexType") == {"months": "Edm.Int64"}
    assert props("assets", "ComplexType") == {
        "animals": "Collection(org.opendatakit.user.feed.Submissions.assets.animals)"}
    household = props("Submissions.household")
    assert household["__Submissions-id"] == "Edm.String"
    assert household["member_age"] == "Edm.Int64"
    assert household["health"] == "org.opendatakit.user.feed.household.health"
    assert household["trips"] == \
        "Collection(org.opendatakit.user.feed.Submissions.household.trips)"
    assert props("Submissions.household.trips") == {
        "__id": "Edm.String", "__Submissions-household-id": "Edm.String",
        "country": "Edm.String"}
    assert props("household.health", "ComplexType") == {"condition": "Edm.String"}

    container = user.find("edm:EntityContainer", E)
    assert container.get("Name") == "feed"
    sets = {s.get("Name"): s.get("EntityType") for s in container.findall("edm:EntitySet", E)}
    assert sets == {name: f"org.opendatakit.user.feed.{name}" for name in model.tables}


def test_metadata__names_nested_repeat_join_ids_as_central():
    model = ODataModel.from_schema("double", schema_of(DOUBLE_REPEAT))
    root = etree.fromstring(metadata_document(model))
    toys = root.find(".//edm:EntityType[@Name='Submissions.children.toys']", E)
    assert [p.get("Name") for p in toys.findall("edm:Property", E)] == [
        "__id", "__Submissions-children-id", "name"]


def test_metadata__escapes_and_sanitizes_odd_ids():
    model = ODataModel.from_schema("a&b<c", schema_of(DOUBLE_REPEAT))
    root = etree.fromstring(metadata_document(model))
    assert root.find(".//edm:EntityContainer", E).get("Name") == "a_b_c"
