"""The export service's small parts: progress (the fraction of rows and files written, at
most once per interval, never 1.0 before the file is stored), keys given the submission's
instanceID, and download tokens kept out of the logs."""

from __future__ import annotations

from server.services.exports import Progress, _rekey


def test_progress__counts_as_items_pass_and_reports_fractions():
    reported: list[float] = []
    progress = Progress(4, reported.append, interval=0)
    assert list(progress.count(["a", "b"])) == ["a", "b"]
    assert list(progress.count(["c", "d", "e"])) == ["c", "d", "e"]
    assert progress.done == 5
    assert reported == [0.25, 0.5, 0.75, 0.99, 0.99]


def test_progress__reports_no_more_often_than_the_interval():
    reported: list[float] = []
    progress = Progress(1000, reported.append, interval=3600)
    assert sum(1 for _ in progress.count(range(1000))) == 1000
    assert reported == []


def test_progress__an_empty_export_does_not_divide_by_zero():
    progress = Progress(0, lambda _: None, interval=0)
    assert list(progress.count([])) == []


def test_rekey__version_keys_become_the_submissions():
    assert _rekey("uuid:v2/roster[1]/stays[2]", "uuid:v2", "uuid:v1") == \
        "uuid:v1/roster[1]/stays[2]"
    assert _rekey("uuid:v2", "uuid:v2", "uuid:v1") == "uuid:v1"
    assert _rekey(None, "uuid:v2", "uuid:v1") is None
    assert _rekey("uuid:v1/r[1]", "uuid:v1", "uuid:v1") == "uuid:v1/r[1]"


def test_logs__an_export_link_token_never_reaches_the_log():
    from server.logs import redact_path

    assert redact_path("/v1/exports/s3cr3t-token_x") == "/v1/exports/[redacted]"
    assert redact_path("/v1/projects/1/forms/f/exports/5/download") == \
        "/v1/projects/1/forms/f/exports/5/download"
