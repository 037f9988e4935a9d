"""The shared submission filter (``server.queries.filters``): each criterion on its own, how
they combine, what never matches (drafts, deleted submissions), and the same filter through
the export API's query arguments."""

# ruff: noqa: F811  (the shared fixtures come from test_exports and are parameters here)

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from server.db import utcnow
from server.models import Submission, SubmissionDef
from server.queries import filters
from server.queries.filters import SubmissionFilter
from tests.integration.test_exports import (  # noqa: F401  (fixtures)
    FORM_ID,
    collect,
    read_csv,
    submitted,
    url,
    v1,
    xml_v1,
    xml_v2,
)
from tests.support.api import submit_xml

JAN, FEB, MAR = (dt.datetime(2026, m, 1, tzinfo=dt.timezone.utc) for m in (1, 2, 3))


@pytest.fixture
def varied(client, project, auth, submitted, db):
    """uuid:a (v1, app user, tablet-1, January, approved), uuid:b (v2, app user, tablet-1,
    February), uuid:c (v2, the manager over the REST API, tablet-9, March, hasIssues),
    uuid:d (v2, tablet-2, edited twice: uuid:d2 then uuid:d3)."""
    submit_xml(client, url(project, "submissions?deviceID=tablet-9"), auth, xml_v2("uuid:c"))
    submitted.send(xml_v2("uuid:d"), device="tablet-2")
    submitted.send(xml_v2("uuid:d2", deprecated="uuid:d"), device="tablet-2")
    submitted.send(xml_v2("uuid:d3", deprecated="uuid:d2"), device="tablet-2")
    for instance_id, created, state in (("uuid:a", JAN, "approved"), ("uuid:b", FEB, None),
                                        ("uuid:c", MAR, "hasIssues")):
        s = db.scalar(select(Submission).where(Submission.instance_id == instance_id))
        s.created_at = created
        if state:
            s.review_state = state
    db.commit()
    return submitted


def matched(db, form_id: int, f: SubmissionFilter) -> list[str]:
    """The instanceIDs of the versions the filter selects."""
    ids = filters.matching(f, form_id).subquery()
    return sorted(db.scalars(select(SubmissionDef.instance_id)
                             .join(ids, ids.c[1] == SubmissionDef.id)))


@pytest.fixture
def form_id(db, project, v1):
    from server import queries

    return queries.forms.get(db, project.id, FORM_ID).id


def test_filter__nothing_selects_every_current_version(db, form_id, varied):
    assert matched(db, form_id, SubmissionFilter()) == ["uuid:a", "uuid:b", "uuid:c",
                                                         "uuid:d3"]


def test_filter__submitted_from_and_to_are_half_open(db, form_id, varied):
    assert matched(db, form_id, SubmissionFilter(submitted_from=FEB)) == [
        "uuid:b", "uuid:c", "uuid:d3"]
    assert matched(db, form_id, SubmissionFilter(submitted_to=FEB)) == ["uuid:a"]
    assert matched(db, form_id, SubmissionFilter(submitted_from=FEB, submitted_to=MAR)) == [
        "uuid:b"]


def test_filter__submitter_user_and_app_user_combine_with_or(db, form_id, varied, manager):
    app_user_id = varied.app_user.id
    assert matched(db, form_id, SubmissionFilter(submitter_user_ids=(manager.id,))) == [
        "uuid:c"]
    assert matched(db, form_id, SubmissionFilter(submitter_app_user_ids=(app_user_id,))) == [
        "uuid:a", "uuid:b", "uuid:d3"]
    both = SubmissionFilter(submitter_user_ids=(manager.id,),
                            submitter_app_user_ids=(app_user_id,))
    assert matched(db, form_id, both) == ["uuid:a", "uuid:b", "uuid:c", "uuid:d3"]


def test_filter__device_review_state_and_form_version(db, form_id, varied):
    assert matched(db, form_id, SubmissionFilter(device_ids=("tablet-9", "tablet-2"))) == [
        "uuid:c", "uuid:d3"]
    assert matched(db, form_id, SubmissionFilter(review_states=("approved", "hasIssues"))) == [
        "uuid:a", "uuid:c"]
    assert matched(db, form_id, SubmissionFilter(review_states=("edited",))) == ["uuid:d3"]
    assert matched(db, form_id, SubmissionFilter(form_versions=("1",))) == ["uuid:a"]
    assert matched(db, form_id, SubmissionFilter(form_versions=("2", "9"))) == [
        "uuid:b", "uuid:c", "uuid:d3"]


def test_filter__history_selects_every_version(db, form_id, varied):
    assert matched(db, form_id, SubmissionFilter(include_history=True,
                                                 device_ids=("tablet-2",))) == [
        "uuid:d", "uuid:d2", "uuid:d3"]


def test_filter__criteria_combine_with_and(db, form_id, varied):
    f = SubmissionFilter(submitted_from=JAN, submitted_to=MAR, review_states=("approved",),
                         device_ids=("collect:tablet-1",))
    assert matched(db, form_id, f) == ["uuid:a"]
    assert matched(db, form_id, SubmissionFilter(review_states=("approved",),
                                                 form_versions=("2",))) == []


def test_filter__deleted_and_draft_submissions_never_match(db, form_id, varied):
    s = db.scalar(select(Submission).where(Submission.instance_id == "uuid:b"))
    s.deleted_at = utcnow()
    db.commit()
    assert "uuid:b" not in matched(db, form_id, SubmissionFilter(include_history=True))
    assert matched(db, form_id, SubmissionFilter(draft=True)) == []


def test_filter__through_the_export_query_arguments(client, project, auth, manager, varied):
    def keys(query: str) -> list[str]:
        r = client.get(url(project, f"submissions.csv?{query}"), headers=auth)
        assert r.status_code == 200, r.get_json()
        return sorted(row["KEY"] for row in read_csv(r.data))

    assert keys("submittedFrom=2026-02-01T00:00:00Z&submittedTo=2026-03-01T00:00:00Z") == [
        "uuid:b"]
    assert keys(f"submitterId={manager.id}") == ["uuid:c"]
    assert keys(f"appUserId={varied.app_user.id}") == ["uuid:a", "uuid:b", "uuid:d"]
    assert keys("deviceId=tablet-9&deviceId=tablet-2") == ["uuid:c", "uuid:d"]
    assert keys("reviewState=approved&reviewState=hasIssues") == ["uuid:a", "uuid:c"]
    assert keys("formVersion=1") == ["uuid:a"]
    assert keys("includeHistory=true&deviceId=tablet-2") == ["uuid:d", "uuid:d2", "uuid:d3"]
