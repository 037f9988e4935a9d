"""One frozen Settings object, read once from ``DODOSO_*`` environment variables.

No other module reads ``os.environ``. Tests build ``Settings`` directly.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from environs import Env, EnvValidationError
from marshmallow.validate import OneOf, Range

ENVIRONMENTS = ("production", "development", "test")
LOG_FORMATS = ("json", "console")
S3_ADDRESSING_STYLES = ("auto", "path", "virtual")
S3_CHECKSUM_MODES = ("when_supported", "when_required")
ODK_VALIDATE_MODES = ("auto", "on", "off")

DEFAULT_MAX_SUBMISSION_BYTES = 100_000_000


class SettingsError(Exception):
    """A setting has a bad value; the message names the variable and what is wrong."""


@dataclass(frozen=True)
class Settings:
    env: str = "production"
    database_url: str = "sqlite:///instance/dodoso.db"
    blob_store: str = "instance/blobs"
    secret_key: str = field(default="", repr=False)
    public_url: str = "http://127.0.0.1:8080"
    max_submission_bytes: int = DEFAULT_MAX_SUBMISSION_BYTES
    log_format: str = "json"
    log_level: str = "INFO"
    allow_insecure_http: bool = False
    trust_proxy: bool = False
    session_ttl_seconds: int = 24 * 3600
    login_max_failures: int = 10
    login_window_seconds: int = 30 * 60
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = field(default=None, repr=False)
    s3_addressing_style: str = "auto"
    s3_checksum_mode: str = "when_supported"
    s3_multipart_threshold_bytes: int = 16 * 1024 * 1024
    s3_connect_timeout_seconds: float = 5.0
    s3_read_timeout_seconds: float = 8.0
    download_url_ttl_seconds: int = 300
    db_pool_size: int = 10
    sqlite_busy_timeout_ms: int = 5000
    odk_validate: str = "auto"
    java_path: str = "java"
    form_max_bytes: int = 10_000_000
    form_compile_timeout_seconds: float = 30.0
    form_compile_memory_bytes: int = 1 << 30

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def development(self) -> bool:
        return self.env in ("development", "test")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def blob_store_is_s3(self) -> bool:
        return self.blob_store.startswith("s3://")

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls) -> Settings:
        """Read ``DODOSO_*`` variables; raise SettingsError naming the bad one."""
        return _from_env()


def _validate(s: Settings) -> None:
    def bad(name: str, why: str) -> SettingsError:
        return SettingsError(f"DODOSO_{name.upper()}: {why}")

    if s.env not in ENVIRONMENTS:
        raise bad("env", f"must be one of {', '.join(ENVIRONMENTS)}")
    if s.log_format not in LOG_FORMATS:
        raise bad("log_format", f"must be one of {', '.join(LOG_FORMATS)}")
    if not s.database_url.startswith(("sqlite", "postgresql")):
        raise bad("database_url", "must be a sqlite:/// or postgresql:// URL")
    if not s.development and len(s.secret_key) < 32:
        raise bad("secret_key", "is required outside development: at least 32 random characters")
    parts = urlsplit(s.public_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise bad("public_url", "must be an absolute http(s) URL, like https://dodoso.example.org")
    if s.blob_store_is_s3 and not urlsplit(s.blob_store).netloc:
        raise bad("blob_store", "an s3:// URL needs a bucket: s3://bucket[/prefix]")
    if s.s3_addressing_style not in S3_ADDRESSING_STYLES:
        raise bad("s3_addressing_style", f"must be one of {', '.join(S3_ADDRESSING_STYLES)}")
    if s.s3_checksum_mode not in S3_CHECKSUM_MODES:
        raise bad("s3_checksum_mode", f"must be one of {', '.join(S3_CHECKSUM_MODES)}")
    for name in ("max_submission_bytes", "session_ttl_seconds", "login_max_failures",
                 "login_window_seconds", "download_url_ttl_seconds", "db_pool_size"):
        if getattr(s, name) < 1:
            raise bad(name, "must be a positive number")
    if s.odk_validate not in ODK_VALIDATE_MODES:
        raise bad("odk_validate", f"must be one of {', '.join(ODK_VALIDATE_MODES)}")
    if s.form_max_bytes < 1 or s.form_compile_timeout_seconds <= 0:
        raise bad("form_max_bytes", "form limits must be positive")
    if s.s3_multipart_threshold_bytes < 5 * 1024 * 1024:
        raise bad("s3_multipart_threshold_bytes", "must be at least 5 MiB (S3's minimum part)")


def _from_env() -> Settings:
    env = Env(eager=False, expand_vars=False)
    with env.prefixed("DODOSO_"):
        defaults = Settings.__dataclass_fields__
        d = {k: f.default for k, f in defaults.items()}
        environment = env.str("ENV", d["env"], validate=OneOf(ENVIRONMENTS))
        development = environment in ("development", "test")
        values = dict(
            env=environment,
            database_url=env.str("DATABASE_URL", d["database_url"]),
            blob_store=env.str("BLOB_STORE", d["blob_store"]),
            secret_key=env.str("SECRET_KEY", _dev_secret() if development else ""),
            public_url=env.str("PUBLIC_URL", d["public_url"]).rstrip("/"),
            max_submission_bytes=env.int("MAX_SUBMISSION_BYTES", d["max_submission_bytes"],
                                         validate=Range(min=1)),
            log_format=env.str("LOG_FORMAT", "console" if development else "json",
                               validate=OneOf(LOG_FORMATS)),
            log_level=env.log_level("LOG_LEVEL", d["log_level"]),
            allow_insecure_http=env.bool("ALLOW_INSECURE_HTTP", development),
            trust_proxy=env.bool("TRUST_PROXY", d["trust_proxy"]),
            session_ttl_seconds=env.int("SESSION_TTL_SECONDS", d["session_ttl_seconds"]),
            login_max_failures=env.int("LOGIN_MAX_FAILURES", d["login_max_failures"]),
            login_window_seconds=env.int("LOGIN_WINDOW_SECONDS", d["login_window_seconds"]),
            argon2_time_cost=env.int("ARGON2_TIME_COST", d["argon2_time_cost"],
                                     validate=Range(min=1)),
            argon2_memory_kib=env.int("ARGON2_MEMORY_KIB", d["argon2_memory_kib"],
                                      validate=Range(min=8)),
            s3_endpoint_url=env.str("S3_ENDPOINT_URL", None),
            s3_region=env.str("S3_REGION", None),
            s3_access_key_id=env.str("S3_ACCESS_KEY_ID", None),
            s3_secret_access_key=env.str("S3_SECRET_ACCESS_KEY", None),
            s3_addressing_style=env.str("S3_ADDRESSING_STYLE", d["s3_addressing_style"]),
            s3_checksum_mode=env.str("S3_CHECKSUM_MODE", d["s3_checksum_mode"]),
            s3_multipart_threshold_bytes=env.int("S3_MULTIPART_THRESHOLD_BYTES",
                                                 d["s3_multipart_threshold_bytes"]),
            s3_connect_timeout_seconds=env.float("S3_CONNECT_TIMEOUT_SECONDS",
                                                 d["s3_connect_timeout_seconds"]),
            s3_read_timeout_seconds=env.float("S3_READ_TIMEOUT_SECONDS",
                                              d["s3_read_timeout_seconds"]),
            download_url_ttl_seconds=env.int("DOWNLOAD_URL_TTL_SECONDS",
                                             d["download_url_ttl_seconds"]),
            db_pool_size=env.int("DB_POOL_SIZE", d["db_pool_size"]),
            sqlite_busy_timeout_ms=env.int("SQLITE_BUSY_TIMEOUT_MS", d["sqlite_busy_timeout_ms"],
                                           validate=Range(min=1)),
            odk_validate=env.str("ODK_VALIDATE", d["odk_validate"]),
            java_path=env.str("JAVA", d["java_path"]),
            form_max_bytes=env.int("FORM_MAX_BYTES", d["form_max_bytes"], validate=Range(min=1)),
            form_compile_timeout_seconds=env.float("FORM_COMPILE_TIMEOUT_SECONDS",
                                                   d["form_compile_timeout_seconds"]),
            form_compile_memory_bytes=env.int("FORM_COMPILE_MEMORY_BYTES",
                                              d["form_compile_memory_bytes"]),
        )
    try:
        env.seal()
    except EnvValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    return Settings(**values)


def _describe(exc: EnvValidationError) -> str:
    lines = []
    for name, messages in sorted(exc.error_messages.items()):
        text = "; ".join(messages) if isinstance(messages, list) else str(messages)
        lines.append(f"{name}: {text}")
    return "Bad configuration:\n  " + "\n  ".join(lines)


_DEV_SECRET: str | None = None


def _dev_secret() -> str:
    """A per-process secret so development runs need no configuration."""
    global _DEV_SECRET
    if _DEV_SECRET is None:
        _DEV_SECRET = secrets.token_urlsafe(48)
    return _DEV_SECRET


def resolve_path(value: str, base: Path | None = None) -> Path:
    """A relative path setting is relative to the working directory the server starts in."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base or Path.cwd()) / p
