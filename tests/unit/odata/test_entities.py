"""Shaping rows into OData entities: typed values, GeoJSON and WKT, groups, navigation links,
Central's repeat-row ids, ``$select`` rules."""

from __future__ import annotations

import datetime as dt

import pytest

from forms.schema import Field
from server.errors import Problem
from server.odata.entities import (
    Row,
    Shaper,
    SubmissionContext,
    selection,
    timestamp,
    typed,
)
from server.odata.model import ODataModel
from tests.unit.odata.forms import DOUBLE_REPEAT, FEED, schema_of


def field(type_: str) -> Field:
    return Field(path="/x", name="x", type=type_, kind="question", repeat=None, group=None,
                 order=0)


@pytest.mark.parametrize(("type_", "text", "expected"), [
    ("int", "42", 42), ("int", " -7 ", -7), ("int", "12.9", 12), ("int", "abc", None),
    ("int", "", None), ("int", None, None),
    ("decimal", "1250.50", 1250.5), ("decimal", "1e3", 1000.0), ("decimal", "nan", None),
    ("decimal", "inf", None), ("decimal", "x", None),
    ("boolean", "true", True), ("boolean", "0", False), ("boolean", "maybe", None),
    ("dateTime", "2026-11-02T09:15:00.000+03", "2026-11-02T09:15:00.000+03:00"),
    ("dateTime", "2026-11-02T09:15:00.000+03:00", "2026-11-02T09:15:00.000+03:00"),
    ("dateTime", "2026-11-02T09:15:00.000Z", "2026-11-02T09:15:00.000Z"),
    ("date", "2026-11-02", "2026-11-02"), ("string", "  spaced  ", "  spaced  "),
    ("select", "sw en", "sw en"), ("binary", "house.jpg", "house.jpg"),
])
def test_typed__values(type_, text, expected):
    assert typed(field(type_), text) == expected


def test_typed__geo_as_geojson_and_wkt():
    point = typed(field("geopoint"), "-1.2921 36.8219 1661 5")
    assert point == {"type": "Point", "coordinates": [36.8219, -1.2921, 1661.0],
                     "properties": {"accuracy": 5.0}}
    assert typed(field("geopoint"), "-1.2921 36.8219") == {
        "type": "Point", "coordinates": [36.8219, -1.2921]}
    assert typed(field("geopoint"), "-1.2921 36.8219 1661 5", wkt=True) == \
        "POINT (36.8219 -1.2921 1661)"
    assert typed(field("geopoint"), "nonsense") is None
    trace = "-1.29 36.82 0 3;-1.30 36.83 0 4"
    assert typed(field("geotrace"), trace) == {
        "type": "LineString", "coordinates": [[36.82, -1.29, 0.0], [36.83, -1.30, 0.0]],
        "properties": {"accuracies": [3.0, 4.0]}}
    assert typed(field("geotrace"), trace, wkt=True) == \
        "LINESTRING (36.82 -1.29 0,36.83 -1.3 0)"
    shape = "-1.29 36.82; -1.30 36.83;-1.31 36.82;-1.29 36.82;"
    assert typed(field("geoshape"), shape) == {
        "type": "Polygon",
        "coordinates": [[[36.82, -1.29], [36.83, -1.30], [36.82, -1.31], [36.82, -1.29]]]}
    assert typed(field("geoshape"), shape, wkt=True) == \
        "POLYGON ((36.82 -1.29,36.83 -1.3,36.82 -1.31,36.82 -1.29))"


def test_timestamp__as_javascript_writes_instants():
    value = dt.datetime(2026, 11, 28, 10, 0, 1, 123456, tzinfo=dt.timezone.utc)
    assert timestamp(value) == "2026-11-28T10:00:01.123Z"
    eat = dt.datetime(2026, 11, 28, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=3)))
    assert timestamp(eat) == "2026-11-28T10:00:00.000Z"
    assert timestamp(None) is None


def test_ids__are_centrals_for_the_same_data():
    """Central's own test vectors (its doubleRepeat form and 'double' instance): children
    2 and 3 are Bob and Chelsea, and Bob's toys 1 and 2."""
    ctx = SubmissionContext("double", "double")
    assert ctx.row_id("double/children/child[2]") == "b6e93a81a53eed0566e65e472d4a4b9ae383ee6d"
    assert ctx.row_id("double/children/child[3]") == "8954b393f82c1833abb19be08a3d6cb382171f54"
    assert ctx.row_id("double/children/child[2]/toys/toy[1]") == \
        "a9058d7b2ed9557205ae53f5b1dc4224043eca2a"
    assert ctx.row_id("double/children/child[2]/toys/toy[2]") == \
        "8d2dc7bd3e97a690c0813e646658e51038eb4144"
    assert ctx.row_id("double") == "double"
    # an edit's rows are keyed under the new version's instanceID; ids stay the submission's
    edited = SubmissionContext("double", "uuid:v2")
    assert edited.row_id("uuid:v2/children/child[2]") == ctx.row_id("double/children/child[2]")
    assert ctx.ancestor_id("double/children/child[2]/toys/toy[4]", 1) == \
        "b6e93a81a53eed0566e65e472d4a4b9ae383ee6d"


@pytest.fixture(scope="module")
def model() -> ODataModel:
    return ODataModel.from_schema("feed", schema_of(FEED))


ROOT_DATA = {
    "/first-name": "Amina", "/age": "34", "/income": "1250.50", "/visit_date": "2026-11-02",
    "/visit_at": None, "/visit_time": None, "/home": "-1 36", "/route": None, "/plot": None,
    "/languages": "sw en", "/photo": "house.jpg", "/work/employer": "Acme",
    "/work/contract/months": "24", "/meta/instanceID": "uuid:1",
}


def test_shaper__submission_with_groups_links_and_system(model):
    ctx = SubmissionContext("uuid:1", "uuid:1")
    shaper = Shaper(model, model.root)
    entity = shaper.submission(ctx, Row("uuid:1", None, "", ROOT_DATA), {"edits": 0})
    assert entity["first_name"] == "Amina" and entity["age"] == 34
    assert entity["work"] == {"employer": "Acme", "contract": {"months": 24}}
    assert entity["household@odata.navigationLink"] == "Submissions('uuid%3A1')/household"
    assert entity["assets"] == {
        "animals@odata.navigationLink": "Submissions('uuid%3A1')/assets/animals"}
    assert entity["meta"] == {"instanceID": "uuid:1"}
    assert entity["__id"] == "uuid:1" and entity["__system"] == {"edits": 0}
    assert "household" not in entity


def test_shaper__repeat_rows_carry_ids_parent_ids_and_nested_links(model):
    ctx = SubmissionContext("uuid:1", "uuid:1")
    table = model.tables["Submissions.household"]
    row = Row("uuid:1/household[2]", "uuid:1", "/household",
              {"/household/member": "Neema", "/household/member_age": "12",
               "/household/health/condition": None})
    entity = Shaper(model, table).repeat_row(ctx, row)
    row_id = ctx.row_id("uuid:1/household[2]")
    assert entity == {
        "member": "Neema", "member_age": 12, "health": {"condition": None},
        "trips@odata.navigationLink": f"Submissions('uuid%3A1')/household('{row_id}')/trips",
        "__id": row_id, "__Submissions-id": "uuid:1"}
    trips = model.tables["Submissions.household.trips"]
    trip = Shaper(model, trips).repeat_row(ctx, Row(
        "uuid:1/household[2]/trips[1]", "uuid:1/household[2]", "/household/trips",
        {"/household/trips/country": "QA"}))
    assert trip["__Submissions-household-id"] == row_id
    assert trip["country"] == "QA"


def test_shaper__expand_nests_rows_in_document_order(model):
    rows = {
        ("/household", "uuid:1"): [
            Row("uuid:1/household[1]", "uuid:1", "/household", {"/household/member": "A"}),
            Row("uuid:1/household[2]", "uuid:1", "/household", {"/household/member": "B"})],
        ("/household/trips", "uuid:1/household[1]"): [
            Row("uuid:1/household[1]/trips[1]", "uuid:1/household[1]", "/household/trips",
                {"/household/trips/country": "KE"})],
    }
    ctx = SubmissionContext("uuid:1", "uuid:1", rows)
    entity = Shaper(model, model.root, expand=True).submission(ctx, Row(
        "uuid:1", None, "", ROOT_DATA), None)
    assert [m["member"] for m in entity["household"]] == ["A", "B"]
    assert entity["household"][0]["trips"] == [
        {"country": "KE", "__id": ctx.row_id("uuid:1/household[1]/trips[1]")}]
    assert entity["household"][1]["trips"] == []
    assert entity["assets"]["animals"] == []


def test_select__central_rules(model):
    root = model.root
    chosen = selection(model, root, ("age", "work/contract/months", "__id",
                                     "__system/submitterId"))
    assert chosen.paths == {"/age", "/work", "/work/contract", "/work/contract/months"}
    assert chosen.meta == {"__id", "__system/submitterId"}
    whole_group = selection(model, root, ("work",))
    assert whole_group.paths == {"/work", "/work/employer", "/work/contract",
                                 "/work/contract/months"}
    household = model.tables["Submissions.household"]
    assert selection(model, household, ("member", "__Submissions-id")).meta == {
        "__Submissions-id"}
    for table, prop, code in ((root, "nope", 400.31), (root, "household/member", 400.32),
                              (household, "__system", 400.31),
                              (household, "trips/country", 400.32),
                              (root, "__system/nope", 400.31)):
        with pytest.raises(Problem) as raised:
            selection(model, table, (prop,))
        assert raised.value.code == code, prop
    shaped = Shaper(model, root, select=chosen).submission(
        SubmissionContext("uuid:1", "uuid:1"), Row("uuid:1", None, "", ROOT_DATA),
        {"submitterId": "5", "edits": 0})
    assert shaped == {"age": 34, "work": {"contract": {"months": 24}}, "__id": "uuid:1",
                      "__system": {"submitterId": "5"}}


def test_double_repeat_model__ids_line_up_with_links():
    model = ODataModel.from_schema("double", schema_of(DOUBLE_REPEAT))
    ctx = SubmissionContext("double", "double")
    child = Row("double/children[2]", "double", "/children", {"/children/name": "Bob"})
    entity = Shaper(model, model.tables["Submissions.children"]).repeat_row(ctx, child)
    assert entity["toys@odata.navigationLink"] == \
        f"Submissions('double')/children('{entity['__id']}')/toys"
