"""The OData feeds over HTTP: service and metadata documents, submission and repeat tables
with the values submitted, keyset paging with ``$skiptoken``, ``$filter``, ``$orderby``,
``$count``, ``$select``, ``$expand``, ``$wkt``, single submissions, drafts, errors, rights."""

from __future__ import annotations

import datetime as dt
import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import etree
from sqlalchemy import update

from server.auth.actor import Actor
from server.models import Form, Submission, User
from server.odata.edmx import EDM_NS
from server.services import review
from tests.integration.test_changes import env  # noqa: F401  (an app with real commits)
from tests.support.api import XML, create_draft, openrosa_submit, submit_xml, upload_form
from tests.support.sql import QueryCounter
from tests.unit.odata.forms import FEED, feed_instance

PUBLIC = "https://dodoso.test"


@pytest.fixture
def base(client, project, auth):
    upload_form(client, project, auth, FEED)
    return f"/v1/projects/{project.id}/forms/feed"


def submit(client, base, auth, xml: bytes, query: str = ""):
    return submit_xml(client, f"{base}/submissions{query}", auth, xml)


def get(client, url, auth, status=200):
    r = client.get(url, headers=auth)
    assert r.status_code == status, r.get_data(as_text=True)
    return r.get_json()


def relative(link: str) -> str:
    assert link.startswith(PUBLIC), link
    return link[len(PUBLIC):]


def many(client, base, auth, n: int, *, start: int = 0, trips: int = 0) -> list[str]:
    ids = []
    for i in range(start, start + n):
        iid = f"uuid:{i:05d}"
        household = tuple((f"m{i}-{k}", str(k), tuple(f"C{j}" for j in range(trips)))
                          for k in range(3))
        submit(client, base, auth, feed_instance(iid, name=f"n{i}", household=household))
        ids.append(iid)
    return ids


# -- documents -------------------------------------------------------------------------------

def test_service_document_and_metadata(client, base, auth):
    r = client.get(f"{base}.svc", headers=auth)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json; odata.metadata=minimal"
    assert r.headers["OData-Version"] == "4.0"
    body = r.get_json()
    assert body["@odata.context"] == f"{PUBLIC}{base}.svc/$metadata"
    assert [v["name"] for v in body["value"]] == [
        "Submissions", "Submissions.household", "Submissions.household.trips",
        "Submissions.assets.animals"]
    assert client.get(f"{base}.svc/", headers=auth).status_code == 200

    meta = client.get(f"{base}.svc/$metadata", headers=auth)
    assert meta.status_code == 200 and meta.mimetype == "application/xml"
    root = etree.fromstring(meta.data)
    names = [e.get("Name") for e in root.iter(f"{{{EDM_NS}}}EntityType")]
    assert names == [v["name"] for v in body["value"]]


# -- values ----------------------------------------------------------------------------------

def test_submissions__values_typed_as_submitted(client, base, auth, manager):
    created = submit(client, base, auth, feed_instance(), query="?deviceID=collect%3A7")
    body = get(client, f"{base}.svc/Submissions", auth)
    assert body["@odata.context"] == f"{PUBLIC}{base}.svc/$metadata#Submissions"
    assert "@odata.nextLink" not in body
    [entity] = body["value"]
    assert entity["__id"] == "uuid:feed-1"
    assert entity["first_name"] == "Amina"
    assert entity["age"] == 34 and entity["income"] == 1250.5
    assert entity["visit_date"] == "2026-11-02"
    assert entity["visit_at"] == "2026-11-02T09:15:00.000+03:00"
    assert entity["visit_time"] == "09:15:00.000+03:00"
    assert entity["home"] == {"type": "Point", "coordinates": [36.8219, -1.2921, 1661.0],
                              "properties": {"accuracy": 5.0}}
    assert entity["route"]["type"] == "LineString"
    assert entity["plot"]["coordinates"][0][0] == [36.82, -1.29]
    assert entity["languages"] == "sw en" and entity["photo"] == "house.jpg"
    assert entity["work"] == {"employer": "Acme Ltd", "contract": {"months": 24}}
    assert entity["meta"] == {"instanceID": "uuid:feed-1"}
    assert entity["household@odata.navigationLink"] == \
        "Submissions('uuid%3Afeed-1')/household"
    assert entity["assets"]["animals@odata.navigationLink"] == \
        "Submissions('uuid%3Afeed-1')/assets/animals"
    system = entity["__system"]
    assert system["submissionDate"].endswith("Z")
    assert system["submissionDate"][:19] == created["createdAt"][:19]
    assert system == {**system, "updatedAt": None, "deletedAt": None,
                      "submitterId": str(manager.id), "submitterName": manager.display_name,
                      "attachmentsPresent": 0, "attachmentsExpected": 1, "status": None,
                      "reviewState": None, "deviceId": "collect:7", "edits": 0,
                      "formVersion": "1"}


def test_repeat_tables__ids_parent_ids_and_values(client, base, auth):
    submit(client, base, auth, feed_instance())
    household = get(client, f"{base}.svc/Submissions.household", auth)["value"]
    assert [(m["member"], m["member_age"]) for m in household] == [("Juma", 40), ("Neema", 12)]
    assert all(m["__Submissions-id"] == "uuid:feed-1" for m in household)
    assert household[0]["health"] == {"condition": "none"}
    assert len({m["__id"] for m in household}) == 2
    trips = get(client, f"{base}.svc/Submissions.household.trips", auth)["value"]
    assert [(t["country"], t["__Submissions-household-id"]) for t in trips] == [
        ("KE", household[0]["__id"]), ("QA", household[0]["__id"])]
    animals = get(client, f"{base}.svc/Submissions.assets.animals", auth)["value"]
    assert [a["kind"] for a in animals] == ["goat", "cow", "hen"]

    # the navigation links lead to the same rows
    link = household[0]["trips@odata.navigationLink"]
    assert link == f"Submissions('uuid%3Afeed-1')/household('{household[0]['__id']}')/trips"
    followed = get(client, f"{base}.svc/{link}", auth)
    assert followed["value"] == trips
    assert followed["@odata.context"].endswith("#Submissions.household.trips")
    mine = get(client, f"{base}.svc/Submissions('uuid%3Afeed-1')/household", auth)["value"]
    assert mine == household
    grouped = get(client, f"{base}.svc/Submissions('uuid:feed-1')/assets/animals", auth)
    assert grouped["value"] == animals
    other = household[1]["trips@odata.navigationLink"]
    assert get(client, f"{base}.svc/{other}", auth)["value"] == []


def test_single_submission_and_missing_ones(client, base, auth):
    submit(client, base, auth, feed_instance())
    one = get(client, f"{base}.svc/Submissions('uuid:feed-1')", auth)
    assert [e["__id"] for e in one["value"]] == ["uuid:feed-1"]
    assert one["@odata.context"].endswith("#Submissions")
    for path in ("Submissions('uuid:nope')", "Submissions('uuid:nope')/household",
                 "Submissions.nope", "Nope", "Submissions('uuid:feed-1')/age"):
        r = client.get(f"{base}.svc/{path}", headers=auth)
        assert r.status_code == 404, path
        assert r.get_json()["code"] == 404.1
        assert r.get_json()["error"] == {"code": "404.1", "message": r.get_json()["message"]}


def test_edits__feed_shows_the_current_version_under_the_first_id(client, base, auth):
    submit(client, base, auth, feed_instance())
    first_ids = [m["__id"] for m in
                 get(client, f"{base}.svc/Submissions.household", auth)["value"]]
    edit = feed_instance("uuid:feed-2", name="Amina K.", deprecated="uuid:feed-1")
    r = client.put(f"{base}/submissions/uuid:feed-1", data=edit, content_type=XML,
                   headers=auth)
    assert r.status_code == 200, r.get_json()
    [entity] = get(client, f"{base}.svc/Submissions", auth)["value"]
    assert entity["__id"] == "uuid:feed-1" and entity["first_name"] == "Amina K."
    assert entity["meta"] == {"instanceID": "uuid:feed-2"}
    assert entity["__system"]["edits"] == 1
    assert entity["__system"]["reviewState"] == "edited"
    household = get(client, f"{base}.svc/Submissions.household", auth)["value"]
    assert [m["__id"] for m in household] == first_ids  # ids follow the submission
    assert all(m["__Submissions-id"] == "uuid:feed-1" for m in household)


# -- paging ----------------------------------------------------------------------------------

def test_paging__skiptoken_walks_a_table_larger_than_a_page(client, base, auth):
    ids = many(client, base, auth, 23)
    seen: list[str] = []
    url = f"{base}.svc/Submissions?$top=5&$count=true&$select=__id"
    pages = 0
    while url:
        body = get(client, url, auth)
        assert body["@odata.count"] == 23
        seen += [e["__id"] for e in body["value"]]
        link = body.get("@odata.nextLink")
        if link:
            query = parse_qs(urlsplit(link).query)
            assert query["$top"] == ["5"] and "$skip" not in query
        url = relative(link) if link else None
        pages += 1
    assert pages == 5
    assert seen == list(reversed(ids))  # newest first, none missed, none twice


def test_paging__repeat_table_through_many_pages_and_a_mid_way_insert(client, base, auth,
                                                                       engine):
    many(client, base, auth, 12)  # 36 rows
    expected = [m["__id"] for m in
                get(client, f"{base}.svc/Submissions.household", auth)["value"]]
    assert len(expected) == 36 and len(set(expected)) == 36
    seen: list[str] = []
    url = f"{base}.svc/Submissions.household?$top=7"
    statements = []
    while url:
        with QueryCounter(engine) as counter:
            body = get(client, url, auth)
        statements.append(len(counter.statements))
        seen += [m["__id"] for m in body["value"]]
        if len(seen) == 14:  # a new submission mid-way: newer, so not in this walk
            many(client, base, auth, 1, start=500)
        link = body.get("@odata.nextLink")
        url = relative(link) if link else None
    assert seen == expected
    assert max(statements) == min(statements)  # every page costs the same queries


def test_paging__skip_then_tokens_and_top_zero(client, base, auth):
    ids = list(reversed(many(client, base, auth, 6)))
    body = get(client, f"{base}.svc/Submissions?$skip=2&$top=2&$select=__id", auth)
    assert [e["__id"] for e in body["value"]] == ids[2:4]
    rest = get(client, relative(body["@odata.nextLink"]), auth)
    assert [e["__id"] for e in rest["value"]] == ids[4:6]
    assert "@odata.nextLink" not in rest
    assert get(client, f"{base}.svc/Submissions?$skip=4", auth)["value"][0]["__id"] == ids[4]
    assert get(client, f"{base}.svc/Submissions?$top=0", auth)["value"] == []
    household = get(client, f"{base}.svc/Submissions('{ids[0]}')/household?$top=2", auth)
    assert len(household["value"]) == 2
    last = get(client, relative(household["@odata.nextLink"]), auth)
    assert len(last["value"]) == 1 and "@odata.nextLink" not in last


def test_paging__a_bad_or_foreign_skiptoken_is_400(client, base, auth):
    many(client, base, auth, 3)
    body = get(client, f"{base}.svc/Submissions?$top=1", auth)
    token = parse_qs(urlsplit(body["@odata.nextLink"]).query)["$skiptoken"][0]
    for url in (f"{base}.svc/Submissions.household?$skiptoken={token}",
                f"{base}.svc/Submissions?$skiptoken={token}&$orderby=__system/updatedAt",
                f"{base}.svc/Submissions?$skiptoken=01eyJ0Ijo1fQ",
                f"{base}.svc/Submissions?$skiptoken=nonsense"):
        r = client.get(url, headers=auth)
        assert r.status_code == 400, url
        assert r.get_json()["code"] == 400.35


# -- options ---------------------------------------------------------------------------------

def test_count_select_wkt_and_expand(client, base, auth):
    submit(client, base, auth, feed_instance())
    counted = get(client, f"{base}.svc/Submissions.household?$count=true&$top=1", auth)
    assert counted["@odata.count"] == 2 and len(counted["value"]) == 1
    selected = get(client, f"{base}.svc/Submissions?$select=age,work/employer,__system/edits",
                   auth)["value"][0]
    assert selected == {"age": 34, "work": {"employer": "Acme Ltd"},
                        "__system": {"edits": 0}}
    wkt = get(client, f"{base}.svc/Submissions?$wkt=true", auth)["value"][0]
    assert wkt["home"] == "POINT (36.8219 -1.2921 1661)"
    assert wkt["route"] == "LINESTRING (36.82 -1.29 0,36.83 -1.3 0)"
    expanded = get(client, f"{base}.svc/Submissions?$expand=*", auth)["value"][0]
    assert [m["member"] for m in expanded["household"]] == ["Juma", "Neema"]
    assert [t["country"] for t in expanded["household"][0]["trips"]] == ["KE", "QA"]
    assert [a["kind"] for a in expanded["assets"]["animals"]] == ["goat", "cow", "hen"]
    rows = get(client, f"{base}.svc/Submissions.household?$expand=*", auth)["value"]
    assert [t["country"] for t in rows[0]["trips"]] == ["KE", "QA"]
    for url, code in (("Submissions?$select=nope", 400.31),
                      ("Submissions?$select=household/member", 400.32),
                      ("Submissions?$expand=household", 501.6),
                      ("Submissions?$expand=*&$select=age", 501.11),
                      ("Submissions?$format=atom", 406.1),
                      ("Submissions?$search=x", 501.1),
                      ("Submissions?$top=x", 400.3),
                      ("Submissions?$top=1&$top=2", 400.3)):
        r = client.get(f"{base}.svc/{url}", headers=auth)
        assert r.get_json()["code"] == code, url


def test_expand__one_query_for_the_rows_of_a_whole_page(client, base, auth, engine):
    many(client, base, auth, 6, trips=2)

    def statements(top: int) -> int:
        with QueryCounter(engine) as counter:
            get(client, f"{base}.svc/Submissions?$expand=*&$top={top}", auth)
        return len(counter.statements)

    assert statements(2) == statements(6)


def _set_created(db, instance_id: str, when: dt.datetime) -> None:
    db.execute(update(Submission).where(Submission.instance_id == instance_id)
               .values(created_at=when))
    db.commit()


def test_filter__system_fields(client, base, auth, db, make, project):
    ids = many(client, base, auth, 4)
    utc = dt.timezone.utc
    _set_created(db, ids[0], dt.datetime(2025, 6, 1, 12, tzinfo=utc))
    _set_created(db, ids[1], dt.datetime(2026, 2, 3, 23, 30, tzinfo=utc))
    client.patch(f"{base}/submissions/{ids[2]}", json={"reviewState": "approved"}, headers=auth)
    other = make.member(project, "data-manager")
    submit(client, base, make.auth(other), feed_instance("uuid:other"))

    def matching(expr: str, table: str = "Submissions") -> list[str]:
        body = get(client, f"{base}.svc/{table}?$filter={expr}&$count=true", auth)
        assert body["@odata.count"] == len(body["value"])
        return sorted(e["__id"] if table == "Submissions" else e["__Submissions-id"]
                      for e in body["value"])

    assert matching("__system/submissionDate lt 2026-01-01T00:00:00Z") == [ids[0]]
    assert matching("__system/submissionDate ge 2026-02-03 and "
                    "__system/submissionDate lt 2026-02-04T01:00:00%2B01:00") == [ids[1]]
    assert matching("year(__system/submissionDate) eq 2025") == [ids[0]]
    assert matching("day(__system/submissionDate) eq 3") == [ids[1]]  # not year()'s SQL
    assert matching("month(__system/submissionDate) eq 2 and day(__system/submissionDate) eq 3"
                    " and hour(__system/submissionDate) eq 23") == [ids[1]]
    assert matching("__system/reviewState eq 'approved'") == [ids[2]]
    assert matching("__system/reviewState ne 'approved'") == sorted(
        [ids[0], ids[1], ids[3], "uuid:other"])
    assert matching("__system/reviewState eq null and "
                    f"__system/submitterId eq {other.id}") == ["uuid:other"]
    assert matching(f"not (__system/submitterId eq {other.id}) and "
                    "(__system/reviewState eq 'approved' or "
                    "__system/submissionDate lt 2026-01-01T00:00:00Z)") == [ids[0], ids[2]]
    assert matching("__system/updatedAt ne null") == [ids[2]]
    assert matching("__system/submissionDate lt now()") == sorted([*ids, "uuid:other"])
    assert matching("$root/Submissions/__system/reviewState eq 'approved'",
                    "Submissions.household") == [ids[2]] * 3

    assert client.delete(f"{base}/submissions/{ids[3]}", headers=auth).status_code == 200
    assert ids[3] not in matching("__system/reviewState eq null")
    assert matching("__system/deletedAt ne null") == [ids[3]]
    deleted = get(client, f"{base}.svc/Submissions?$filter=__system/deletedAt ne null", auth)
    assert deleted["value"][0]["__system"]["deletedAt"] is not None


@pytest.mark.parametrize(("expr", "code"), [
    ("__system/submissionDate gt", 400.18),
    ("__system/submissionDate gt 'soon'", 400.18),
    ("(__system/reviewState eq null", 400.18),
    ("first_name eq 'Amina'", 501.5),
    ("contains(__system/reviewState,'x')", 501.4),
    ("__system/submitterId in (1,2)", 501.4),
])
def test_filter__bad_expressions_have_stable_codes(client, base, auth, expr, code):
    r = client.get(f"{base}.svc/Submissions?$filter={expr}", headers=auth)
    assert r.status_code == int(code)
    assert r.get_json()["code"] == code
    assert r.get_json()["error"]["code"] == str(code)


def test_orderby__system_fields_with_paging(client, base, auth, db):
    ids = many(client, base, auth, 5)
    for iid, state in ((ids[1], "approved"), (ids[3], "hasIssues"), (ids[4], "approved")):
        client.patch(f"{base}/submissions/{iid}", json={"reviewState": state}, headers=auth)
    url = f"{base}.svc/Submissions?$orderby=__system/reviewState desc&$top=2&$select=__id"
    seen = []
    while url:
        body = get(client, url, auth)
        seen += [e["__id"] for e in body["value"]]
        url = relative(body["@odata.nextLink"]) if "@odata.nextLink" in body else None
    # hasIssues, approved (newest id first among ties), then received (null) last
    assert seen == [ids[3], ids[4], ids[1], ids[2], ids[0]]
    ascending = get(client, f"{base}.svc/Submissions?$orderby=__system/reviewState&"
                            "$select=__id", auth)["value"]
    # ascending: nulls first, ties by id ascending too (Central's stable order)
    assert [e["__id"] for e in ascending] == [ids[0], ids[2], ids[1], ids[4], ids[3]]
    oldest = get(client, f"{base}.svc/Submissions?$orderby=__system/submissionDate asc"
                         "&$top=1&$select=__id", auth)["value"]
    assert oldest == [{"__id": ids[0]}]


# -- deleted, drafts, rights -----------------------------------------------------------------

def test_deleted_submissions_leave_the_feed(client, base, auth):
    ids = many(client, base, auth, 2)
    client.delete(f"{base}/submissions/{ids[0]}", headers=auth)
    assert [e["__id"] for e in get(client, f"{base}.svc/Submissions", auth)["value"]] == \
        [ids[1]]
    rows = get(client, f"{base}.svc/Submissions.household", auth)["value"]
    assert {r["__Submissions-id"] for r in rows} == {ids[1]}
    assert client.get(f"{base}.svc/Submissions('{ids[0]}')", headers=auth).status_code == 404


def test_draft_feed_serves_test_submissions(client, base, auth, project):
    token = create_draft(client, project, auth, "feed")["draftToken"]
    openrosa_submit(client, f"/v1/test/{token}/projects/{project.id}/forms/feed/draft/submission",
                    feed_instance("uuid:test-1"))
    assert get(client, f"{base}.svc/Submissions", auth)["value"] == []
    drafted = get(client, f"{base}/draft.svc/Submissions", auth)
    assert [e["__id"] for e in drafted["value"]] == ["uuid:test-1"]
    assert drafted["@odata.context"] == f"{PUBLIC}{base}/draft.svc/$metadata#Submissions"
    assert get(client, f"{base}/draft.svc", auth)["value"][0]["name"] == "Submissions"
    assert client.get(f"{base}/draft.svc/$metadata", headers=auth).status_code == 200


def test_rights_errors_and_challenges(client, base, auth, make, project):
    submit(client, base, auth, feed_instance())
    viewer = make.auth(make.member(project, "viewer"))
    assert client.get(f"{base}.svc/Submissions", headers=viewer).status_code == 200
    outsider = make.auth(make.member(make.project("Elsewhere"), "manager"))
    assert client.get(f"{base}.svc/Submissions", headers=outsider).status_code == 404
    anonymous = client.get(f"{base}.svc/Submissions")
    assert anonymous.status_code == 401
    assert anonymous.get_json()["code"] == 401.2
    challenges = anonymous.headers.get_all("WWW-Authenticate")
    assert any(c.startswith("Basic") for c in challenges)
    assert any(c.startswith("Bearer") for c in challenges)
    meta = client.get(f"{base}.svc/$metadata")
    assert meta.status_code == 401 and meta.mimetype == "text/xml"
    error = etree.fromstring(meta.data)
    assert error.tag == "error" and error.get("code") == "401.2"
    missing = client.get(f"/v1/projects/{project.id}/forms/nope.svc/$metadata", headers=auth)
    assert missing.status_code == 404 and etree.fromstring(missing.data).get("code") == "404.1"
    unpublished = client.get(f"{base}/draft.svc/Submissions", headers=auth)
    assert unpublished.status_code == 404


def test_reading_a_feed_holds_no_sqlite_write_lock(env):  # noqa: F811
    """A feed is read in a deferred transaction: while a long response is being written,
    writers (Collect's uploads) carry on. (Real commits: the change-feed tests' app.)"""
    if env.backend != "sqlite":
        pytest.skip("SQLite's write lock")
    form = env.new_form()
    for n in range(3):
        env.submit(form, f"uuid:lock-{n}")
    response = env.client.get(f"{env.url(form)}.svc/Submissions", headers=env.headers,
                              buffered=False)
    assert response.status_code == 200
    chunks = iter(response.response)
    first = next(chunks)  # the body has started: the request's session is still open
    writer = env.sessions()
    try:
        started = time.perf_counter()
        review.review(writer, Actor(user=writer.get(User, env.manager_id)),
                      writer.get(Form, form.id), "uuid:lock-1", "approved")
        writer.commit()
        assert time.perf_counter() - started < 2
    finally:
        writer.close()
    body = json.loads(first + b"".join(chunks))
    response.close()
    assert len(body["value"]) == 3
