"""Logging: JSON lines that carry the request id of the request they were written in, and
never a key from a URL."""

from __future__ import annotations

import io
import json
import sys
from types import SimpleNamespace

import pytest
import structlog

from server.logs import bind_request_id, configure_logging, log, redact_path


@pytest.fixture
def json_lines(monkeypatch):
    saved = structlog.get_config()
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    configure_logging(SimpleNamespace(log_level="INFO", log_format="json"))  # type: ignore[arg-type]

    def read() -> list[dict]:
        return [json.loads(line) for line in out.getvalue().splitlines() if line]
    yield read
    bind_request_id(None)
    structlog.configure(**saved)


def test_lines_written_during_a_request_carry_its_id_and_later_lines_do_not(json_lines):
    bind_request_id("0f" * 16)
    log.info("inside", n=1)
    bind_request_id(None)
    log.info("outside")
    inside, outside = json_lines()
    assert inside["event"] == "inside" and inside["request_id"] == "0f" * 16
    assert inside["n"] == 1 and inside["level"] == "info"
    assert "request_id" not in outside


def test_a_request_id_given_by_the_caller_of_log_is_kept(json_lines):
    bind_request_id("a" * 32)
    log.info("job", request_id="b" * 32)
    (line,) = json_lines()
    assert line["request_id"] == "b" * 32


def test_keys_and_tokens_in_paths_are_redacted():
    assert redact_path("/v1/key/abc$def/projects/1/submission") == \
        "/v1/key/[redacted]/projects/1/submission"
    assert redact_path("/v1/sessions/tok123") == "/v1/sessions/[redacted]"
    assert redact_path("/v1/sessions/current") == "/v1/sessions/current"
