"""pyodk reads the OData feed of a running dodoso (``db upgrade``, ``demo``, ``serve`` in a
fresh working directory, as tests/e2e/test_pyodk.py does) exactly as it reads Central's:
``client.submissions.get_table()`` for the submissions and for a repeat table, with its
paging, count, filter, WKT, expand and select options; and reviews and comments through
pyodk's own calls. A plain HTTP client then follows ``@odata.nextLink`` through the table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pyodk.client import Client

from tests.e2e.test_demo_server import REQUEST_TIMEOUT_SECONDS
from tests.integration.test_openrosa_concurrency import scratch_database_url
from tests.support.live import LiveServer, demo_server
from tests.support.xlsx import XLSX, md_to_xlsx
from tests.unit.odata.forms import FEED, FEED_FORM_ID, feed_instance

PEOPLE = ("Amina", "Juma", "Neema", "Zawadi", "Baraka")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The demo on SQLite, and on a scratch PostgreSQL database when the suite has one."""
    tmp = tmp_path_factory.mktemp(f"pyodk-odata-{request.param}")
    (tmp / "work").mkdir()
    with scratch_database_url(request.param, tmp) as url, \
            demo_server(tmp / "work", DODOSO_DATABASE_URL=url) as live:
        published = requests.post(
            f"{live.base_url}/v1/projects/{live.project_id}/forms"
            "?publish=true&ignoreWarnings=true",
            data=md_to_xlsx(FEED), timeout=REQUEST_TIMEOUT_SECONDS,
            headers={"Authorization": f"Bearer {live.token}", "Content-Type": XLSX},
            proxies={"http": "", "https": ""})
        assert published.status_code == 200, published.text
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    tmp: Path = tmp_path_factory.mktemp("pyodk-odata-client")
    config = tmp / "pyodk_config.toml"
    config.write_text(
        "[central]\n"
        f'base_url = "{server.base_url}"\n'
        f'username = "{server.email}"\n'
        f'password = "{server.password}"\n'
        f"default_project_id = {server.project_id}\n")
    made = Client(config_path=config, cache_path=tmp / "pyodk_cache.toml")
    made.session.trust_env = False
    with made:
        for n, name in enumerate(PEOPLE):
            household = ((f"{name} senior", "60", ("KE", "QA")), (f"{name} junior", "9", ()))
            xml = feed_instance(f"uuid:odata-{n}", name=name, household=household)
            made.submissions.create(xml=xml.decode(), form_id=FEED_FORM_ID)
        yield made


def test_pyodk__get_table_reads_submissions(client):
    table = client.submissions.get_table(form_id=FEED_FORM_ID)
    rows = table["value"]
    assert [r["first_name"] for r in rows] == list(reversed(PEOPLE))
    row = rows[-1]
    assert row["__id"] == "uuid:odata-0"
    assert row["age"] == 34 and row["income"] == 1250.5
    assert row["home"]["type"] == "Point"
    assert row["work"] == {"employer": "Acme Ltd", "contract": {"months": 24}}
    assert row["__system"]["formVersion"] == "1"
    assert table["@odata.context"].endswith(f"/forms/{FEED_FORM_ID}.svc/$metadata#Submissions")


def test_pyodk__get_table_reads_a_repeat_table(client):
    members = client.submissions.get_table(form_id=FEED_FORM_ID,
                                           table_name="Submissions.household")["value"]
    assert len(members) == 2 * len(PEOPLE)
    assert {m["__Submissions-id"] for m in members} == {f"uuid:odata-{n}"
                                                        for n in range(len(PEOPLE))}
    trips = client.submissions.get_table(form_id=FEED_FORM_ID,
                                         table_name="Submissions.household.trips")["value"]
    parents = {m["__id"] for m in members if m["member"].endswith("senior")}
    assert {t["__Submissions-household-id"] for t in trips} == parents
    assert sorted(t["country"] for t in trips) == sorted(["KE", "QA"] * len(PEOPLE))


def test_pyodk__get_table_options(client):
    page = client.submissions.get_table(form_id=FEED_FORM_ID, top=2, skip=1, count=True,
                                        wkt=True)
    assert page["@odata.count"] == len(PEOPLE)
    assert [r["first_name"] for r in page["value"]] == list(reversed(PEOPLE))[1:3]
    assert page["value"][0]["home"].startswith("POINT (")
    assert "$skiptoken=" in page["@odata.nextLink"]
    selected = client.submissions.get_table(form_id=FEED_FORM_ID, select="first_name,__id")
    assert selected["value"][0] == {"first_name": PEOPLE[-1], "__id": "uuid:odata-4"}
    expanded = client.submissions.get_table(form_id=FEED_FORM_ID, expand="*")["value"]
    assert [m["member"] for m in expanded[0]["household"]] == [f"{PEOPLE[-1]} senior",
                                                               f"{PEOPLE[-1]} junior"]

    client.submissions.review("uuid:odata-1", review_state="approved", form_id=FEED_FORM_ID,
                              comment="Checked by phone")
    approved = client.submissions.get_table(
        form_id=FEED_FORM_ID, filter="__system/reviewState eq 'approved'")["value"]
    assert [r["__id"] for r in approved] == ["uuid:odata-1"]
    comments = client.submissions.list_comments("uuid:odata-1", form_id=FEED_FORM_ID)
    assert [c.body for c in comments] == ["Checked by phone"]
    this_year = client.submissions.get_table(
        form_id=FEED_FORM_ID, filter="year(__system/submissionDate) ge 2020 and "
                                     "__system/reviewState eq null")["value"]
    assert len(this_year) == len(PEOPLE) - 1


def test_http__following_next_links_reads_each_row_once(server, client):
    headers = {"Authorization": f"Bearer {server.token}"}
    url = (f"{server.base_url}/v1/projects/{server.project_id}/forms/{FEED_FORM_ID}.svc/"
           "Submissions.household?$top=3")
    seen = []
    while url:
        r = requests.get(url, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS,
                         proxies={"http": "", "https": ""})
        assert r.status_code == 200, r.text
        assert r.headers["OData-Version"] == "4.0"
        body = r.json()
        seen += [m["__id"] for m in body["value"]]
        url = body.get("@odata.nextLink")
    assert len(seen) == 2 * len(PEOPLE) == len(set(seen))
    metadata = requests.get(
        f"{server.base_url}/v1/projects/{server.project_id}/forms/{FEED_FORM_ID}.svc/$metadata",
        headers=headers, timeout=REQUEST_TIMEOUT_SECONDS, proxies={"http": "", "https": ""})
    assert metadata.status_code == 200
    assert b'Namespace="org.opendatakit.user.feed"' in metadata.content
