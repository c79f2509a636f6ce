"""The docroute command: tokens a script can use, and refusals that name what is wrong."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner
from shared.auth import ROLES

from docroute.cli import main


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import os

    # `run` and `up` set defaults in their own process's environment (the seed's files, the console's
    # URLs): invoked in-process here, they get a copy that this test's end throws away.
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if not k.startswith("DOCROUTE_")})
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


PRODUCTION = {
    "DOCROUTE_ENV": "production",
    "DOCROUTE_JWT_SECRET": "9c4f1e7a2b8d3f60e5a7c1d9b2f84e3a6d0c5b7e9f1a2d4c",
    "DOCROUTE_AMQP_URL": "amqps://intake:secret@rabbit.example:5671/docroute",
    "DOCROUTE_S3_ENDPOINT": "minio.example:9000",
    "DOCROUTE_S3_ACCESS_KEY": "access",
    "DOCROUTE_S3_SECRET_KEY": "s" * 40,
    "DOCROUTE_S3_SECURE": "true",
    "DOCROUTE_INTAKE_DATABASE_URL": "postgresql://intake@db.example/intake",
    "DOCROUTE_ROUTING_DATABASE_URL": "postgresql://routing@db.example/routing",
    "DOCROUTE_ARCHIVE_DATABASE_URL": "postgresql://archive@db.example/archive",
}


@pytest.fixture
def no_processes(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """`up` and `run` with everything they would start replaced by a record of what they were given."""
    from docroute import cli, embedded

    started: list[list[str]] = []
    monkeypatch.setattr(cli, "_supervise", lambda children: started.append([c.name for c in children]) or 0)
    monkeypatch.setattr(embedded, "prepare", lambda host, ports: [])
    monkeypatch.setattr("shared.runtime.run_all", lambda workers, stop: started.append(["embedded"]))
    return started


@pytest.mark.parametrize("command", [["up", "--no-migrate"], ["run"]])
def test_production_prints_no_tokens_and_says_why_in_one_line(
    env: Path, monkeypatch: pytest.MonkeyPatch, no_processes: list[list[str]], command: list[str]
) -> None:
    for key, value in PRODUCTION.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0, result.output
    assert no_processes, "the command did not get as far as starting its processes"
    assert "eyJ" not in result.output  # no JWT at all
    [line] = [line for line in result.output.splitlines() if "token" in line.lower()]
    assert line.startswith("No development tokens: DOCROUTE_ENV=production")
    assert not (env / "jwt-secret").exists()


@pytest.mark.parametrize("command", [["up", "--no-migrate"], ["run"]])
def test_development_tokens_are_labelled_as_such(
    env: Path, monkeypatch: pytest.MonkeyPatch, no_processes: list[list[str]], command: list[str]
) -> None:
    monkeypatch.setenv("DOCROUTE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    monkeypatch.setenv("DOCROUTE_JWT_SECRET", "d" * 40)
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if "tokens" in line)
    assert lines[header].startswith("DEVELOPMENT tokens (DOCROUTE_ENV=development; valid 12 hours;")
    labels = [line for line in lines if line.strip().startswith("[development]")]
    assert {label.split("]")[1].split()[0].rstrip(":") for label in labels} == set(ROLES)
    tokens = [line.strip() for line in lines if line.strip().startswith("eyJ")]
    assert len(tokens) == len(labels)
    for raw in tokens:
        claims = jwt.decode(raw, "d" * 40, algorithms=["HS256"])
        assert claims["sub"].startswith("dev-") and claims["exp"] - claims["iat"] == 12 * 3600


def test_up_gives_each_worker_its_own_metrics_port() -> None:
    from docroute.cli import up_children
    from docroute.services import SERVICES

    children = up_children(SERVICES, {"DOCROUTE_METRICS_PORT": "9100"}, base_port=8001, bin_dir=Path("/b"))
    ports = {c.name: (c.env.get("DOCROUTE_PORT"), c.env.get("DOCROUTE_METRICS_PORT")) for c in children}
    assert ports["intake-api"][0] == "8001" and ports["routing-api"][0] == "8002"
    assert ports["archive-api"][0] == "8003"
    workers = {name: metrics for name, (_, metrics) in ports.items() if name.endswith("-worker")}
    assert workers == {"intake-worker": "9100", "routing-worker": "9101", "archive-worker": "9102"}

    # The offset belongs to the service, not to its place in a --service selection.
    from docroute.services import by_name

    [_, archive] = up_children(
        [by_name("archive")], {"DOCROUTE_METRICS_PORT": "9100"}, base_port=8001, bin_dir=Path("/b")
    )
    assert archive.env["DOCROUTE_METRICS_PORT"] == "9102" and archive.name == "archive-worker"

    unset = up_children(SERVICES, {}, base_port=8001, bin_dir=Path("/b"))
    assert all("DOCROUTE_METRICS_PORT" not in c.env for c in unset)


def test_up_refuses_a_metrics_base_without_room_for_three_workers(
    env: Path, monkeypatch: pytest.MonkeyPatch, no_processes: list[list[str]]
) -> None:
    monkeypatch.setenv("DOCROUTE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    monkeypatch.setenv("DOCROUTE_METRICS_PORT", "65534")
    result = CliRunner().invoke(main, ["up", "--no-migrate"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: DOCROUTE_METRICS_PORT: docroute up gives the workers base, base+1 and base+2; "
        "must be at most 65533"
    ]
    assert no_processes == []


def test_up_runs_the_console_before_intake_unless_production_has_no_identity_provider() -> None:
    from docroute.cli import console_child

    console = console_child({"DOCROUTE_DATA_DIR": "/d"}, base_port=8001, bin_dir=Path("/b"))
    assert console is not None and console.name == "console"
    assert console.argv[0] == "/b/gunicorn" and console.argv[2].endswith("services/console/gunicorn.conf.py")
    assert console.env["DOCROUTE_PORT"] == "8000"
    assert [console.env[f"DOCROUTE_CONSOLE_{s}_URL"] for s in ("INTAKE", "ROUTING", "ARCHIVE")] == [
        "http://127.0.0.1:8001",
        "http://127.0.0.1:8002",
        "http://127.0.0.1:8003",
    ]
    # A URL the operator set is kept.
    kept = console_child({"DOCROUTE_CONSOLE_INTAKE_URL": "http://i:1"}, base_port=8001, bin_dir=Path("/b"))
    assert kept is not None and kept.env["DOCROUTE_CONSOLE_INTAKE_URL"] == "http://i:1"
    assert console_child({"DOCROUTE_ENV": "production"}, base_port=8001, bin_dir=Path("/b")) is None
    with_provider = {"DOCROUTE_ENV": "production", "DOCROUTE_CONSOLE_OIDC_CLIENT_ID": "docroute-console"}
    assert console_child(with_provider, base_port=8001, bin_dir=Path("/b")) is not None


def test_up_starts_the_console_with_the_services(
    env: Path, monkeypatch: pytest.MonkeyPatch, no_processes: list[list[str]]
) -> None:
    monkeypatch.setenv("DOCROUTE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    result = CliRunner().invoke(main, ["up", "--no-migrate"])
    assert result.exit_code == 0, result.output
    [names] = no_processes
    assert "console" in names and {"intake-api", "routing-api", "archive-api"} <= set(names)
    assert "Bàn làm việc (console)  http://127.0.0.1:8000/ (gunicorn)" in result.output
    # The session key every gunicorn worker of the console reads, written once before they start.
    assert (env / "console-session-key").is_file()
