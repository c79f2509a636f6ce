"""Typed environment readers and the settings every docroute service shares (read once, frozen)."""

from __future__ import annotations

import builtins
import contextlib
import math
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ENVIRONMENTS = ("development", "production")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
JWT_ALGORITHMS = ("HS256", "RS256")
AMQP_SCHEMES = ("amqp://", "amqps://", "memory://")
DEV_SECRET_FILE = "jwt-secret"  # noqa: S105 - a file name, not a secret
# A production HS256 secret must carry at least this many bits by a per-character entropy estimate: 32
# random bytes as hex (`openssl rand -hex 32`) give about 250, while "a" * 32 or a passphrase of a few
# repeated words give far less.
MIN_SECRET_BITS = 128
# Longest token lifetime accepted (exp - iat), seconds: long enough for a unit client's token file, short
# enough that a leaked token does not work for ever.
DEFAULT_MAX_TOKEN_LIFETIME = 30 * 24 * 3600

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class SettingsError(Exception):
    """A missing or malformed setting; the message is one line that starts with the variable name."""

    def __init__(self, name: builtins.str, problem: builtins.str) -> None:
        # One line, always: operators read it as the last line of a failed start-up.
        message = f"{name}: {problem}".replace("\r", " ").replace("\n", " ")
        super().__init__(message)
        self.name = name


class Env:
    """Typed readers over an environment mapping; an unset or empty variable means the default."""

    def __init__(self, environ: Mapping[builtins.str, builtins.str] | None = None) -> None:
        self._environ: Mapping[builtins.str, builtins.str] = os.environ if environ is None else environ

    def raw(self, name: builtins.str) -> builtins.str | None:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def str(self, name: builtins.str, default: builtins.str | None = None) -> builtins.str | None:
        value = self.raw(name)
        return default if value is None else value

    def required(self, name: builtins.str) -> builtins.str:
        value = self.raw(name)
        if value is None:
            raise SettingsError(name, "is required but not set")
        return value

    def int(
        self,
        name: builtins.str,
        default: builtins.int,
        min: builtins.int | None = None,
        max: builtins.int | None = None,
    ) -> builtins.int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = builtins.int(value)
        except ValueError:
            raise SettingsError(name, f"must be an integer, got {value!r}") from None
        _check_range(name, number, min, max)
        return number

    def float(
        self,
        name: builtins.str,
        default: builtins.float,
        min: builtins.float | None = None,
        max: builtins.float | None = None,
    ) -> builtins.float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = builtins.float(value)
        except ValueError:
            raise SettingsError(name, f"must be a number, got {value!r}") from None
        if number != number or number in (builtins.float("inf"), builtins.float("-inf")):
            raise SettingsError(name, f"must be a finite number, got {value!r}")
        _check_range(name, number, min, max)
        return number

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise SettingsError(name, f"must be true or false (1/0, yes/no, on/off), got {value!r}")

    def choice(
        self, name: builtins.str, default: builtins.str, choices: Iterable[builtins.str]
    ) -> builtins.str:
        allowed = tuple(choices)
        value = self.raw(name)
        if value is None:
            return default
        if value not in allowed:
            raise SettingsError(name, f"must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def path(self, name: builtins.str, default: builtins.str | Path) -> Path:
        value = self.raw(name)
        return Path(default if value is None else value).expanduser()


def _check_range(
    name: builtins.str,
    number: builtins.float,
    low: builtins.float | None,
    high: builtins.float | None,
) -> None:
    if low is not None and number < low:
        raise SettingsError(name, f"must be at least {low}, got {number}")
    if high is not None and number > high:
        raise SettingsError(name, f"must be at most {high}, got {number}")


@dataclass(frozen=True)
class ObjectStoreSettings:
    """Where blobs live: an S3 endpoint (MinIO) when `endpoint` is set, else the filesystem store."""

    endpoint: str | None
    access_key: str | None
    secret_key: str | None
    secure: bool
    region: str | None
    staging_bucket: str
    archive_bucket: str

    @classmethod
    def from_env(cls, env: Env) -> ObjectStoreSettings:
        endpoint = env.str("DOCROUTE_S3_ENDPOINT")
        if endpoint is not None and "://" in endpoint:
            # minio takes host[:port]; the scheme is DOCROUTE_S3_SECURE's job.
            raise SettingsError("DOCROUTE_S3_ENDPOINT", "must be host[:port] without a scheme")
        access_key = env.str("DOCROUTE_S3_ACCESS_KEY")
        secret_key = env.str("DOCROUTE_S3_SECRET_KEY")
        if endpoint is not None:
            if access_key is None:
                raise SettingsError("DOCROUTE_S3_ACCESS_KEY", "is required when DOCROUTE_S3_ENDPOINT is set")
            if secret_key is None:
                raise SettingsError("DOCROUTE_S3_SECRET_KEY", "is required when DOCROUTE_S3_ENDPOINT is set")
        return cls(
            endpoint=endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=env.bool("DOCROUTE_S3_SECURE", False),
            region=env.str("DOCROUTE_S3_REGION"),
            staging_bucket=env.str("DOCROUTE_STAGING_BUCKET", "docroute-staging") or "docroute-staging",
            archive_bucket=env.str("DOCROUTE_ARCHIVE_BUCKET", "docroute-archive") or "docroute-archive",
        )


@dataclass(frozen=True)
class AuthSettings:
    """How bearer tokens are verified: HS256 with a shared secret, or RS256 against a JWKS URL."""

    algorithm: str = "HS256"
    secret: str | None = None
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    max_lifetime: int = DEFAULT_MAX_TOKEN_LIFETIME

    def __repr__(self) -> str:
        # Keep the secret out of logs and tracebacks that print the settings object.
        return (
            f"AuthSettings(algorithm={self.algorithm!r}, secret={'***' if self.secret else None}, "
            f"jwks_url={self.jwks_url!r}, issuer={self.issuer!r}, audience={self.audience!r}, "
            f"max_lifetime={self.max_lifetime!r})"
        )

    @classmethod
    def from_env(cls, env: Env, *, environment: str, data_dir: Path) -> AuthSettings:
        production = environment == "production"
        algorithm = env.choice("DOCROUTE_JWT_ALGORITHM", "HS256", JWT_ALGORITHMS)
        secret = env.str("DOCROUTE_JWT_SECRET")
        jwks_url = env.str("DOCROUTE_JWT_JWKS_URL")
        issuer = env.str("DOCROUTE_JWT_ISSUER")
        audience = env.str("DOCROUTE_JWT_AUDIENCE")
        if algorithm == "HS256":
            if secret is None:
                if production:
                    raise SettingsError("DOCROUTE_JWT_SECRET", "is required for HS256 in production")
                secret = ensure_dev_secret(data_dir)
            elif production:
                check_production_secret("DOCROUTE_JWT_SECRET", secret)
        elif jwks_url is None:
            raise SettingsError("DOCROUTE_JWT_JWKS_URL", "is required when DOCROUTE_JWT_ALGORITHM is RS256")
        elif not jwks_url.startswith(("https://", "http://")):
            raise SettingsError("DOCROUTE_JWT_JWKS_URL", "must be an http(s):// URL")
        elif production:
            # The keys that decide who is admin must not come over a channel anyone on the path can rewrite,
            # and a token some other application of the same provider was given must not be accepted here.
            if not jwks_url.startswith("https://"):
                raise SettingsError("DOCROUTE_JWT_JWKS_URL", "must be an https:// URL in production")
            if issuer is None:
                raise SettingsError("DOCROUTE_JWT_ISSUER", "is required with RS256 in production")
            if audience is None:
                raise SettingsError("DOCROUTE_JWT_AUDIENCE", "is required with RS256 in production")
        return cls(
            algorithm=algorithm,
            secret=secret,
            jwks_url=jwks_url,
            issuer=issuer,
            audience=audience,
            max_lifetime=env.int(
                "DOCROUTE_JWT_MAX_LIFETIME", DEFAULT_MAX_TOKEN_LIFETIME, min=60, max=366 * 24 * 3600
            ),
        )


def estimated_bits(secret: str) -> float:
    """Entropy estimate of a secret: its length times the Shannon entropy of its character frequencies."""
    counts: dict[str, int] = {}
    for char in secret:
        counts[char] = counts.get(char, 0) + 1
    total = len(secret)
    per_char = -sum(n / total * math.log2(n / total) for n in counts.values()) if total else 0.0
    return per_char * total


def check_production_secret(name: str, secret: str) -> None:
    """Refuse a production secret that is short or predictable (one line naming `name`)."""
    if len(secret) < 32:
        raise SettingsError(name, "must be at least 32 characters in production")
    bits = estimated_bits(secret)
    if bits < MIN_SECRET_BITS:
        raise SettingsError(
            name,
            f"is too predictable for production (about {bits:.0f} bits, at least {MIN_SECRET_BITS} needed); "
            "generate one with `openssl rand -hex 32`",
        )


def ensure_dev_secret(
    data_dir: Path | str, *, name: str = DEV_SECRET_FILE, variable: str = "DOCROUTE_JWT_SECRET"
) -> str:
    """Return the development secret in `<data_dir>/<name>` (by default the HS256 secret, `jwt-secret`):
    64 hex digits, created (0600) on first use; `variable` is the setting it stands in for."""
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    if not target.exists():
        # Several processes may start together: write a private temp file, then link it into place,
        # so exactly one secret wins and nobody reads a half-written file.
        tmp = directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    secret = target.read_text(encoding="ascii").strip()
    if not secret:
        raise SettingsError(variable, f"unset and {target} is empty")
    return secret


DAY = 86400

#: Outbox and inbox pruning (shared.pruning): published outbox rows kept a week, inbox (dedup) rows two weeks.
DEFAULT_OUTBOX_RETENTION = 7 * DAY
DEFAULT_INBOX_RETENTION = 14 * DAY
DEFAULT_PRUNE_INTERVAL = 3600.0


@dataclass(frozen=True)
class PruneSettings:
    """How long published outbox rows and inbox rows are kept, and how often a worker prunes."""

    outbox_retention_seconds: int = DEFAULT_OUTBOX_RETENTION
    inbox_retention_seconds: int = DEFAULT_INBOX_RETENTION
    interval_seconds: float = DEFAULT_PRUNE_INTERVAL

    @classmethod
    def from_env(cls, env: Env) -> PruneSettings:
        """See shared.pruning for what the windows must exceed."""
        return cls(
            outbox_retention_seconds=env.int(
                "DOCROUTE_OUTBOX_RETENTION_SECONDS", DEFAULT_OUTBOX_RETENTION, min=3600, max=3650 * DAY
            ),
            inbox_retention_seconds=env.int(
                "DOCROUTE_INBOX_RETENTION_SECONDS", DEFAULT_INBOX_RETENTION, min=DAY, max=3650 * DAY
            ),
            interval_seconds=env.float(
                "DOCROUTE_PRUNE_INTERVAL_SECONDS", DEFAULT_PRUNE_INTERVAL, min=10, max=DAY
            ),
        )


@dataclass(frozen=True)
class CommonSettings:
    """The settings every service embeds in its own frozen Settings."""

    env: str
    data_dir: Path
    amqp_url: str
    object_store: ObjectStoreSettings
    auth: AuthSettings
    log_level: str = "INFO"
    publish_confirm_timeout: float = 5.0
    consumer_delivery_limit: int = 5
    pruning: PruneSettings = field(default_factory=PruneSettings)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, infrastructure: bool = True
    ) -> CommonSettings:
        """`infrastructure=False` for a service that uses neither the broker nor the object store (the
        console): their embedded defaults are then not refused in production."""
        env = Env(environ)
        environment = env.choice("DOCROUTE_ENV", "development", ENVIRONMENTS)
        data_dir = env.path("DOCROUTE_DATA_DIR", "var")
        amqp_url = env.str("DOCROUTE_AMQP_URL", "memory://") or "memory://"
        if not amqp_url.startswith(AMQP_SCHEMES):
            raise SettingsError("DOCROUTE_AMQP_URL", "must be an amqp://, amqps:// or memory:// URL")
        log_level = env.choice("DOCROUTE_LOG_LEVEL", "INFO", LOG_LEVELS)
        object_store = ObjectStoreSettings.from_env(env)
        if environment == "production" and infrastructure:
            # The embedded defaults lose messages on restart (memory://) and keep objects without object
            # lock (filesystem): a production start names the setting still at its embedded default.
            if amqp_url.startswith("memory://"):
                raise SettingsError("DOCROUTE_AMQP_URL", "must be an amqp:// or amqps:// URL in production")
            if object_store.endpoint is None:
                raise SettingsError("DOCROUTE_S3_ENDPOINT", "is required in production (no filesystem store)")
        return cls(
            env=environment,
            data_dir=data_dir,
            amqp_url=amqp_url,
            object_store=object_store,
            auth=AuthSettings.from_env(env, environment=environment, data_dir=data_dir),
            log_level=log_level,
            publish_confirm_timeout=env.float("DOCROUTE_PUBLISH_CONFIRM_TIMEOUT", 5.0, min=0.1, max=300),
            consumer_delivery_limit=env.int("DOCROUTE_DELIVERY_LIMIT", 5, min=1, max=1000),
            pruning=PruneSettings.from_env(env),
        )


def database_url(service: str, *, data_dir: Path, environ: Mapping[str, str] | None = None) -> str:
    """`DOCROUTE_<SVC>_DATABASE_URL`, defaulting to the SQLite file `<data_dir>/<svc>.db`."""
    name = f"DOCROUTE_{service.upper()}_DATABASE_URL"
    env = Env(environ)
    url = env.str(name)
    production = env.choice("DOCROUTE_ENV", "development", ENVIRONMENTS) == "production"
    if url is None:
        if production:
            raise SettingsError(name, "is required in production (SQLite is for development)")
        return f"sqlite:///{data_dir / f'{service}.db'}"
    if not url.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
        raise SettingsError(name, "must be a sqlite:// or postgresql:// URL")
    if production and url.startswith("sqlite://"):
        raise SettingsError(name, "must be a postgresql:// URL in production (SQLite is for development)")
    if url.startswith("postgresql://"):
        # psycopg 3 is the only PostgreSQL driver installed; SQLAlchemy would default to psycopg2.
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url
