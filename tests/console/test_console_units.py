"""The console's own logic: Vietnamese formatting, the inbox's order, who a token says a person is."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from console.app import Person, create_app, date_vn, number_vn, token_claims
from console.pages.unit import inbox_order
from console.settings import Settings
from shared.auth import issue_token
from shared.settings import SettingsError


def test_dates_are_written_dd_mm_yyyy_and_instants_in_vietnam_time() -> None:
    assert date_vn("2026-12-05") == "05/12/2026"
    assert date_vn(date(2021, 4, 8)) == "08/04/2021"
    assert date_vn("2026-12-04T23:41:53+00:00") == "05/12/2026 06:41"
    assert date_vn(None) == "—"


def test_numbers_group_thousands_with_dots() -> None:
    assert number_vn(1234567) == "1.234.567"
    assert number_vn(12) == "12"


def test_the_inbox_puts_open_overdue_and_urgent_work_first_and_the_newest_first_within() -> None:
    tasks = [
        {
            "id": "done",
            "status": "completed",
            "overdue": False,
            "urgency": "hoa_toc",
            "created_at": "2026-12-04",
        },
        {
            "id": "old-normal",
            "status": "assigned",
            "overdue": False,
            "urgency": "thuong",
            "created_at": "2026-12-01",
        },
        {
            "id": "new-normal",
            "status": "assigned",
            "overdue": False,
            "urgency": "thuong",
            "created_at": "2026-12-03",
        },
        {
            "id": "urgent",
            "status": "received",
            "overdue": False,
            "urgency": "khan",
            "created_at": "2026-12-02",
        },
        {
            "id": "late",
            "status": "in_progress",
            "overdue": True,
            "urgency": "thuong",
            "created_at": "2026-11-01",
        },
    ]
    assert [t["id"] for t in inbox_order(tasks)] == ["late", "urgent", "new-normal", "old-normal", "done"]


def test_a_token_with_a_unit_claim_is_that_unit_whatever_other_roles_it_carries() -> None:
    token = issue_token("s" * 40, sub="x", roles=["unit", "clerk"], unit="PVHTT.DONGXOAI")
    claims = token_claims(token)
    person = Person(sub=claims["sub"], roles=tuple(claims["roles"]), unit=claims["unit"], token=token)
    assert person.is_unit and not person.has("clerk")
    assert person.label == "Đơn vị PVHTT.DONGXOAI"


PROVIDER = {
    "DOCROUTE_JWT_ALGORITHM": "RS256",
    "DOCROUTE_JWT_JWKS_URL": "https://sso.example/realms/docroute/protocol/openid-connect/certs",
    "DOCROUTE_JWT_ISSUER": "https://sso.example/realms/docroute",
    "DOCROUTE_JWT_AUDIENCE": "docroute",
    "DOCROUTE_CONSOLE_SESSION_KEY": "k" * 40,
}


def test_production_signs_in_only_at_the_identity_provider(tmp_path: Path) -> None:
    production = {**PROVIDER, "DOCROUTE_ENV": "production", "DOCROUTE_DATA_DIR": str(tmp_path)}
    with pytest.raises(SettingsError, match="DOCROUTE_CONSOLE_OIDC_CLIENT_ID"):
        Settings.from_env(production)
    production["DOCROUTE_CONSOLE_OIDC_CLIENT_ID"] = "docroute-console"
    with pytest.raises(SettingsError, match="DOCROUTE_CONSOLE_PUBLIC_URL"):
        Settings.from_env(production)
    with pytest.raises(SettingsError, match="https"):
        Settings.from_env({**production, "DOCROUTE_CONSOLE_PUBLIC_URL": "http://docroute.example"})
    settings = Settings.from_env({**production, "DOCROUTE_CONSOLE_PUBLIC_URL": "https://docroute.example/"})
    assert settings.dev_sign_in is False
    assert settings.oidc is not None
    assert (
        settings.oidc.metadata_url == "https://sso.example/realms/docroute/.well-known/openid-configuration"
    )
    assert settings.oidc.redirect_uri == "https://docroute.example/dang-nhap/oidc"
    assert "***" not in repr(settings.oidc)  # no client secret configured: a public client with PKCE
    app = create_app(settings)
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["SESSION_COOKIE_HTTPONLY"]
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_a_provider_needs_the_apis_rs256_issuer_and_replaces_the_development_identities(
    tmp_path: Path,
) -> None:
    development = {"DOCROUTE_DATA_DIR": str(tmp_path), "DOCROUTE_CONSOLE_OIDC_CLIENT_ID": "docroute-console"}
    with pytest.raises(SettingsError, match="DOCROUTE_JWT_ISSUER"):
        Settings.from_env({**development, "DOCROUTE_CONSOLE_PUBLIC_URL": "http://127.0.0.1:8000"})
    assert Settings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path)}).dev_sign_in is True
    with_provider = Settings.from_env(
        {**PROVIDER, **development, "DOCROUTE_CONSOLE_PUBLIC_URL": "http://127.0.0.1:8000"}
    )
    assert with_provider.dev_sign_in is False
