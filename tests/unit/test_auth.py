"""Passwords, tokens and log redaction."""

from __future__ import annotations

import pytest

from server.auth.passwords import Passwords
from server.auth.roles import ALL_VERBS, ROLE_VERBS, verbs_for
from server.auth.tokens import looks_like_token, new_token, token_hash
from server.logs import redact_path
from server.settings import Settings


@pytest.fixture(scope="module")
def passwords():
    return Passwords(Settings(env="test", argon2_time_cost=1, argon2_memory_kib=64))


def test_passwords__argon2id_round_trip(passwords):
    h = passwords.hash("kilimanjaro 5895")
    assert h.startswith("$argon2id$")
    assert passwords.verify(h, "kilimanjaro 5895")
    assert not passwords.verify(h, "kilimanjaro 5896")


def test_passwords__no_hash_never_verifies(passwords):
    assert not passwords.verify(None, "")
    assert not passwords.verify(None, "dodoso-dummy-password")


def test_passwords__garbage_hash_is_a_mismatch_not_a_crash(passwords):
    assert not passwords.verify("not-a-hash", "x")


def test_tokens__random_long_and_hashed():
    a, b = new_token(), new_token()
    assert a != b
    assert len(a) == 64 and looks_like_token(a)
    assert token_hash(a) != a and len(token_hash(a)) == 64
    assert not looks_like_token("short")
    assert not looks_like_token("x" * 40 + "/../")


def test_roles__manager_holds_every_designer_and_data_manager_verb():
    assert ROLE_VERBS["designer"] - {"app_user.list"} <= ROLE_VERBS["manager"]
    assert ROLE_VERBS["data-manager"] <= ROLE_VERBS["manager"]
    assert ROLE_VERBS["viewer"] <= ROLE_VERBS["data-manager"]
    assert verbs_for(set()) == frozenset()
    assert verbs_for({"viewer", "designer"}) <= ALL_VERBS


@pytest.mark.parametrize("path,expected", [
    ("/v1/key/abcDEF123-_/projects/1/formList", "/v1/key/[redacted]/projects/1/formList"),
    ("/v1/test/abc/projects/1/forms/x/draft/key/sekret/formList",
     "/v1/test/abc/projects/1/forms/x/draft/key/[redacted]/formList"),
    ("/v1/sessions/sekret-token", "/v1/sessions/[redacted]"),
    ("/v1/sessions/current", "/v1/sessions/current"),
    ("/v1/projects/1?token=abc&x=1", "/v1/projects/1?token=[redacted]&x=1"),
])
def test_redact_path__tokens_never_reach_the_log(path, expected):
    assert redact_path(path) == expected
