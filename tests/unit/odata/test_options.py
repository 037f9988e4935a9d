"""Query options and resource paths of a feed request, and opaque skiptokens."""

from __future__ import annotations

import datetime as dt

import pytest

from server.errors import Problem
from server.odata.model import ODataModel
from server.odata.options import (
    decode_skiptoken,
    encode_skiptoken,
    parse_options,
    parse_resource,
)
from tests.unit.odata.forms import FEED, schema_of


@pytest.fixture(scope="module")
def model() -> ODataModel:
    return ODataModel.from_schema("feed", schema_of(FEED))


def test_options__parsed():
    options = parse_options({"$top": "10", "$skip": "5", "$count": "true", "$wkt": "true",
                             "$select": "age, work", "$format": "json",
                             "$filter": "__system/reviewState eq null",
                             "$orderby": "__system/updatedAt desc"})
    assert (options.top, options.skip, options.count, options.wkt) == (10, 5, True, True)
    assert options.select == ("age", "work")
    assert options.filter is not None and options.orderby[0].field == "updatedAt"
    assert parse_options({"$select": "*"}).select is None
    assert parse_options({"$expand": "*"}).expand is True
    assert parse_options({}).top is None


def test_options__a_skiptoken_overrides_skip():
    token = encode_skiptoken({"t": "Submissions", "k": [1]})
    assert parse_options({"$skip": "5", "$skiptoken": token}).skip == 0


@pytest.mark.parametrize(("args", "code"), [
    ({"$top": "-1"}, 400.3), ({"$top": "ten"}, 400.3), ({"$skip": "1.5"}, 400.3),
    ({"$top": str(2 ** 70)}, 400.3), ({"$count": "yes"}, 400.3), ({"$wkt": "1"}, 400.3),
    ({"$search": "x"}, 501.1), ({"name": "x"}, 501.1), ({"$apply": "x"}, 501.1),
    ({"$format": "atom"}, 406.1), ({"$format": "xml"}, 406.1),
    ({"$expand": "household"}, 501.6),
    ({"$expand": "*", "$select": "age"}, 501.11),
    ({"$filter": "age eq 1"}, 501.5), ({"$filter": "("}, 400.18),
    ({"$orderby": "age"}, 501.5),
    ({"$skiptoken": "garbage"}, 400.35), ({"$skiptoken": "01!!!"}, 400.35),
    ({"$skiptoken": "01" + "W10"}, 400.35),  # a JSON list, not an object
])
def test_options__refused_with_stable_codes(args, code):
    with pytest.raises(Problem) as raised:
        parse_options(args)
    assert raised.value.code == code


def test_skiptoken__round_trips_instants_and_is_opaque():
    when = dt.datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=dt.timezone.utc)
    data = {"t": "Submissions.household", "s": ["submissionDate", "__id", "__row"],
            "k": [when, 7, None]}
    token = encode_skiptoken(data)
    assert token.startswith("01") and "Submissions" not in token
    assert decode_skiptoken(token) == data


def test_resource__paths(model):
    assert parse_resource(model, "Submissions").table.name == "Submissions"
    assert parse_resource(model, "Submissions.household.trips").table.path == \
        "/household/trips"
    one = parse_resource(model, "Submissions('uuid:a/b''c')")
    assert (one.table.name, one.instance_id) == ("Submissions", "uuid:a/b'c")
    rows = parse_resource(model, "Submissions('uuid:1')/household")
    assert (rows.table.name, rows.instance_id, rows.ancestor_id) == (
        "Submissions.household", "uuid:1", None)
    grouped = parse_resource(model, "Submissions('uuid:1')/assets/animals")
    assert grouped.table.name == "Submissions.assets.animals"
    nested = parse_resource(model, "Submissions('uuid:1')/household('abc')/trips")
    assert (nested.table.name, nested.ancestor_depth, nested.ancestor_id) == (
        "Submissions.household.trips", 1, "abc")
    assert parse_resource(model, "Submissions('uuid:1')/household/trips").ancestor_id is None


@pytest.mark.parametrize("path", [
    "", "Nope", "Submissions.nope", "Submissions.work", "Submissions('x')/nope",
    "Submissions('x')/age", "Submissions('x')/work", "Submissions('x')/assets('y')/animals",
    "Submissions('x')/household('y')", "Submissions('unterminated)", "Submissions(x)",
    "Submissions('x')junk", "Submissions.household('x')/trips", "household",
])
def test_resource__anything_else_is_404(model, path):
    with pytest.raises(Problem) as raised:
        parse_resource(model, path)
    assert raised.value.code == 404.1
