"""The console's settings: where the three APIs are, how sessions are signed, how people sign in."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from shared.settings import CommonSettings, Env, SettingsError

SESSION_KEY_FILE = "console-session-key"


@dataclass(frozen=True)
class OidcSettings:
    """The console as an OpenID Connect client of the identity provider whose tokens the APIs accept."""

    issuer: str
    client_id: str
    client_secret: str | None
    public_url: str

    @property
    def metadata_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    @property
    def redirect_uri(self) -> str:
        return self.public_url + "/dang-nhap/oidc"

    def __repr__(self) -> str:
        secret = "***" if self.client_secret else None
        return (
            f"OidcSettings(issuer={self.issuer!r}, client_id={self.client_id!r}, client_secret={secret}, "
            f"public_url={self.public_url!r})"
        )


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    intake_url: str
    routing_url: str
    archive_url: str
    session_key: str
    dev_sign_in: bool
    api_timeout: float
    oidc: OidcSettings | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = Env(environ)
        # The console talks to the APIs only: no broker, no object store.
        common = CommonSettings.from_env(environ, infrastructure=False)
        production = common.env == "production"
        key = env.str("DOCROUTE_CONSOLE_SESSION_KEY")
        if key is None:
            if production:
                raise SettingsError("DOCROUTE_CONSOLE_SESSION_KEY", "is required in production")
            key = _dev_session_key(common.data_dir)
        elif len(key) < 32:
            raise SettingsError("DOCROUTE_CONSOLE_SESSION_KEY", "must be at least 32 characters")
        oidc = _oidc(env, common, production)
        return cls(
            common=common,
            intake_url=_url(env, "DOCROUTE_CONSOLE_INTAKE_URL", "http://127.0.0.1:8001"),
            routing_url=_url(env, "DOCROUTE_CONSOLE_ROUTING_URL", "http://127.0.0.1:8002"),
            archive_url=_url(env, "DOCROUTE_CONSOLE_ARCHIVE_URL", "http://127.0.0.1:8003"),
            session_key=key,
            # The development identities only in development, and never beside a real identity provider.
            dev_sign_in=not production and oidc is None,
            api_timeout=env.float("DOCROUTE_CONSOLE_API_TIMEOUT", 30.0, min=1.0, max=300.0),
            oidc=oidc,
        )


def _oidc(env: Env, common: CommonSettings, production: bool) -> OidcSettings | None:
    """OpenID Connect sign-in, when a client id is configured; production cannot run without it."""
    client_id = env.str("DOCROUTE_CONSOLE_OIDC_CLIENT_ID")
    if client_id is None:
        if production:
            # Rather than offer the development identities to the world, refuse to start.
            raise SettingsError(
                "DOCROUTE_CONSOLE_OIDC_CLIENT_ID", "is required in production (OpenID Connect sign-in)"
            )
        return None
    auth = common.auth
    if auth.algorithm != "RS256" or not auth.issuer:
        # The provider people sign in at must be the one whose tokens the APIs accept.
        raise SettingsError(
            "DOCROUTE_JWT_ISSUER",
            "OpenID Connect sign-in needs DOCROUTE_JWT_ALGORITHM=RS256 and the provider's issuer URL",
        )
    public_url = env.str("DOCROUTE_CONSOLE_PUBLIC_URL")
    if public_url is None:
        raise SettingsError("DOCROUTE_CONSOLE_PUBLIC_URL", "is required with OpenID Connect sign-in")
    if not public_url.startswith("https://" if production else ("https://", "http://")):
        raise SettingsError("DOCROUTE_CONSOLE_PUBLIC_URL", "must be an https:// URL in production")
    return OidcSettings(
        issuer=auth.issuer,
        client_id=client_id,
        client_secret=env.str("DOCROUTE_CONSOLE_OIDC_CLIENT_SECRET"),
        public_url=public_url.rstrip("/"),
    )


def _url(env: Env, name: str, default: str) -> str:
    value = env.str(name, default) or default
    if not value.startswith(("http://", "https://")):
        raise SettingsError(name, f"must be an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


def _dev_session_key(data_dir: Path) -> str:
    path = data_dir / SESSION_KEY_FILE
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key, encoding="utf-8")
        path.chmod(0o600)
        return key
