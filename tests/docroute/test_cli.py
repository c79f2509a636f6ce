"""The docroute command: tokens a script can use, and refusals that name what is wrong."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner

from docroute.cli import main


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in [k for k in __import__("os").environ if k.startswith("DOCROUTE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("DOCROUTE_DATA_DIR", str(tmp_path))
    return tmp_path


def test_token_is_signed_with_the_generated_development_secret(env: Path) -> None:
    result = CliRunner().invoke(main, ["token", "--role", "unit", "--unit", "PVHTT.BUDOP", "--sub", "bu-dop"])
    assert result.exit_code == 0, result.output
    secret = (env / "jwt-secret").read_text().strip()
    claims = jwt.decode(result.output.strip(), secret, algorithms=["HS256"])
    assert claims["sub"] == "bu-dop"
    assert claims["roles"] == ["unit"]
    assert claims["unit"] == "PVHTT.BUDOP"
    assert claims["exp"] - claims["iat"] == 3600


def test_token_uses_the_configured_secret(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCROUTE_JWT_SECRET", "s" * 40)
    result = CliRunner().invoke(main, ["token", "--role", "auditor"])
    assert result.exit_code == 0, result.output
    assert jwt.decode(result.output.strip(), "s" * 40, algorithms=["HS256"])["roles"] == ["auditor"]
    assert not (env / "jwt-secret").exists()


def test_unit_token_needs_a_unit(env: Path) -> None:
    result = CliRunner().invoke(main, ["token", "--role", "unit"])
    assert result.exit_code != 0
    assert "--unit" in result.output


def test_unknown_role_is_refused(env: Path) -> None:
    result = CliRunner().invoke(main, ["token", "--role", "mayor"])
    assert result.exit_code != 0
    assert "mayor" in result.output


def test_bad_setting_stops_with_one_line_naming_the_variable(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCROUTE_AMQP_URL", "http://nope")
    result = CliRunner().invoke(main, ["token", "--role", "clerk"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: DOCROUTE_AMQP_URL: must be an amqp://, amqps:// or memory:// URL"
    ]


def test_up_refuses_the_in_process_transport(env: Path) -> None:
    result = CliRunner().invoke(main, ["up"])
    assert result.exit_code == 1
    assert "DOCROUTE_AMQP_URL" in result.output


def test_token_longer_than_the_maximum_lifetime_is_not_minted(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCROUTE_JWT_MAX_LIFETIME", "7200")
    assert CliRunner().invoke(main, ["token", "--role", "clerk", "--ttl", "7200"]).exit_code == 0
    result = CliRunner().invoke(main, ["token", "--role", "clerk", "--ttl", "7201"])
    assert result.exit_code != 0
    assert "DOCROUTE_JWT_MAX_LIFETIME" in result.output
