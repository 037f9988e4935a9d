"""Settings: read from DODOSO_* once, validated with errors that name the variable."""

from __future__ import annotations

import os

import pytest

from server.settings import Settings, SettingsError


@pytest.fixture
def env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("DODOSO_"):
            monkeypatch.delenv(name)

    def set_(**values: str) -> None:
        for k, v in values.items():
            monkeypatch.setenv(f"DODOSO_{k}", v)
    return set_


def test_defaults__embedded_sqlite_and_local_blobs(env):
    env(ENV="development")
    s = Settings.from_env()
    assert s.database_url == "sqlite:///instance/dodoso.db"
    assert s.blob_store == "instance/blobs"
    assert s.max_submission_bytes == 100_000_000
    assert s.log_format == "console"
    assert s.allow_insecure_http is True
    assert len(s.secret_key) >= 32


def test_production__requires_a_secret_key(env):
    env(ENV="production")
    with pytest.raises(SettingsError, match="DODOSO_SECRET_KEY"):
        Settings.from_env()
    env(SECRET_KEY="k" * 40)
    s = Settings.from_env()
    assert s.log_format == "json"
    assert s.allow_insecure_http is False


def test_production__is_the_default(env):
    with pytest.raises(SettingsError, match="DODOSO_SECRET_KEY"):
        Settings.from_env()


@pytest.mark.parametrize("name,value", [
    ("MAX_SUBMISSION_BYTES", "abc"),
    ("MAX_SUBMISSION_BYTES", "0"),
    ("LOG_FORMAT", "xml"),
    ("ENV", "staging"),
    ("ALLOW_INSECURE_HTTP", "perhaps"),
    ("LOG_LEVEL", "CHATTY"),
])
def test_bad_value__names_the_variable(env, name, value):
    env(ENV="development")
    env(**{name: value})
    with pytest.raises(SettingsError, match=f"DODOSO_{name}"):
        Settings.from_env()


@pytest.mark.parametrize("changes,variable", [
    ({"database_url": "mysql://x"}, "DODOSO_DATABASE_URL"),
    ({"public_url": "dodoso.example.org"}, "DODOSO_PUBLIC_URL"),
    ({"blob_store": "s3://"}, "DODOSO_BLOB_STORE"),
    ({"s3_checksum_mode": "never"}, "DODOSO_S3_CHECKSUM_MODE"),
    ({"s3_addressing_style": "sideways"}, "DODOSO_S3_ADDRESSING_STYLE"),
    ({"s3_multipart_threshold_bytes": 1024}, "DODOSO_S3_MULTIPART_THRESHOLD_BYTES"),
])
def test_bad_combination__names_the_variable(changes, variable):
    with pytest.raises(SettingsError, match=variable):
        Settings(env="development", **changes)


def test_s3_settings__are_read(env):
    env(ENV="development", BLOB_STORE="s3://dodoso-blobs/prod", S3_ENDPOINT_URL="https://s3.x",
        S3_REGION="af-south-1", S3_ADDRESSING_STYLE="path", S3_CHECKSUM_MODE="when_required")
    s = Settings.from_env()
    assert s.blob_store_is_s3
    assert (s.s3_endpoint_url, s.s3_region, s.s3_addressing_style, s.s3_checksum_mode) == (
        "https://s3.x", "af-south-1", "path", "when_required")


def test_settings__are_frozen_and_hide_secrets():
    s = Settings(env="development", secret_key="s" * 40, s3_secret_access_key="aws-secret")
    with pytest.raises(AttributeError):
        s.env = "production"  # type: ignore[misc]
    assert "aws-secret" not in repr(s)
    assert "s" * 40 not in repr(s)


def test_public_url__trailing_slash_is_dropped(env):
    env(ENV="development", PUBLIC_URL="https://dodoso.example.org/")
    assert Settings.from_env().public_url == "https://dodoso.example.org"
