"""The console's settings: where the three APIs are, how sessions are signed, how people sign in."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from shared.settings import CommonSettings, Env, SettingsError

SESSION_KEY_FILE = "console-session-key"


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    intake_url: str
    routing_url: str
    archive_url: str
    session_key: str
    dev_sign_in: bool
    api_timeout: float

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = Env(environ)
        common = CommonSettings.from_env(environ)
        production = common.env == "production"
        key = env.str("DOCROUTE_CONSOLE_SESSION_KEY")
        if key is None:
            if production:
                raise SettingsError("DOCROUTE_CONSOLE_SESSION_KEY", "is required in production")
            key = _dev_session_key(common.data_dir)
        elif len(key) < 32:
            raise SettingsError("DOCROUTE_CONSOLE_SESSION_KEY", "must be at least 32 characters")
        if production:
            # Production sign-in is OpenID Connect (authorization code + PKCE), not built yet: refuse to start
            # rather than offer the development identities to the world.
            raise SettingsError(
                "DOCROUTE_ENV",
                "the console has no production sign-in yet (OpenID Connect); run it in development",
            )
        return cls(
            common=common,
            intake_url=_url(env, "DOCROUTE_CONSOLE_INTAKE_URL", "http://127.0.0.1:8001"),
            routing_url=_url(env, "DOCROUTE_CONSOLE_ROUTING_URL", "http://127.0.0.1:8002"),
            archive_url=_url(env, "DOCROUTE_CONSOLE_ARCHIVE_URL", "http://127.0.0.1:8003"),
            session_key=key,
            dev_sign_in=not production,
            api_timeout=env.float("DOCROUTE_CONSOLE_API_TIMEOUT", 30.0, min=1.0, max=300.0),
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
