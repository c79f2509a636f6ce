"""Options of the docroute-unit command: flags, environment fallbacks and the errors that name the option."""

from __future__ import annotations

from pathlib import Path

import pytest
from docroute_unit.cli import main
from docroute_unit.config import ConfigError, parse_config

AMQP = "amqp://unit:secret@broker.example:5672/docroute"


def test_environment_supplies_what_the_flags_do_not() -> None:
    env = {
        "DOCROUTE_UNIT_AMQP_URL": AMQP,
        "DOCROUTE_UNIT_CODE": "PVHTT.BUDOP",
        "DOCROUTE_UNIT_ROUTING_URL": "https://routing.example",
        "DOCROUTE_UNIT_TOKEN": "tok",
        "DOCROUTE_UNIT_STATE_FILE": "/var/lib/docroute-unit/seen.jsonl",
    }
    config = parse_config(["--prefetch", "3"], env)
    assert config.unit == "PVHTT.BUDOP"
    assert config.queue == "routing.tasks.PVHTT.BUDOP"
    assert config.routing_url == "https://routing.example"
    assert config.token == "tok"
    assert config.prefetch == 3
    assert config.deliver_to == "stdout"
    assert config.state_file == Path("/var/lib/docroute-unit/seen.jsonl")


def test_flags_win_over_the_environment() -> None:
    env = {"DOCROUTE_UNIT_AMQP_URL": "amqp://x@elsewhere/", "DOCROUTE_UNIT_CODE": "SYT"}
    config = parse_config(
        ["--amqp-url", AMQP, "--unit", "BPTV", "--deliver-to", "http://unit.example/h"], env
    )
    assert (config.amqp_url, config.unit, config.deliver_to) == (AMQP, "BPTV", "http://unit.example/h")


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        ([], "--amqp-url"),
        (["--amqp-url", "http://broker/"], "--amqp-url"),
        (["--amqp-url", AMQP], "--unit"),
        (["--amqp-url", AMQP, "--unit", "routing.tasks.#"], "--unit"),
        (["--amqp-url", AMQP, "--unit", "SYT", "--routing-url", "http://r"], "--token"),
        (["--amqp-url", AMQP, "--unit", "SYT", "--deliver-to", "file:///tmp/x"], "--deliver-to"),
    ],
)
def test_bad_options_fail_with_a_message_naming_the_option(argv: list[str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        parse_config(argv, {})


def test_non_positive_numbers_are_refused_by_the_parser() -> None:
    with pytest.raises(SystemExit):
        parse_config(["--amqp-url", AMQP, "--unit", "SYT", "--prefetch", "0"], {})


def test_command_exits_2_with_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ("DOCROUTE_UNIT_AMQP_URL", "DOCROUTE_UNIT_CODE"):
        monkeypatch.delenv(var, raising=False)
    assert main(["--unit", "SYT"]) == 2
    assert capsys.readouterr().err.strip() == "docroute-unit: --amqp-url (DOCROUTE_UNIT_AMQP_URL): required"


# ------------------------------------------- finding 21: secrets off the command line, warned when on it

BASE = ["--unit", "SYT", "--routing-url", "https://routing.example"]


def private_file(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def test_token_and_amqp_url_are_read_from_files_without_warnings(tmp_path: Path) -> None:
    token = private_file(tmp_path / "token", "eyJ.tok.en\n")
    url = private_file(tmp_path / "amqp", AMQP + "\n")
    config = parse_config([*BASE, "--token-file", str(token), "--amqp-url-file", str(url)], {})
    assert (config.token, config.amqp_url, config.warnings) == ("eyJ.tok.en", AMQP, ())


def test_file_variables_work_like_the_file_flags(tmp_path: Path) -> None:
    env = {
        "DOCROUTE_UNIT_TOKEN_FILE": str(private_file(tmp_path / "token", "tok")),
        "DOCROUTE_UNIT_AMQP_URL_FILE": str(private_file(tmp_path / "amqp", AMQP)),
    }
    config = parse_config(BASE, env)
    assert (config.token, config.amqp_url, config.warnings) == ("tok", AMQP, ())


def test_environment_values_give_no_warning() -> None:
    config = parse_config(BASE, {"DOCROUTE_UNIT_TOKEN": "tok", "DOCROUTE_UNIT_AMQP_URL": AMQP})
    assert config.warnings == ()


def test_secrets_on_the_command_line_are_used_with_a_warning(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = parse_config([*BASE, "--token", "tok", "--amqp-url", AMQP], {})
    assert config.token == "tok" and config.amqp_url == AMQP
    assert len(config.warnings) == 2
    assert all("visible to other users" in w for w in config.warnings)
    assert "--token-file" in config.warnings[1] and "--amqp-url-file" in config.warnings[0]
    # A URL without a password is not a secret.
    config = parse_config([*BASE, "--amqp-url", "amqps://broker.example/"], {"DOCROUTE_UNIT_TOKEN": "t"})
    assert config.warnings == ()


def test_command_prints_the_warnings_on_stderr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("DOCROUTE_UNIT_AMQP_URL", "DOCROUTE_UNIT_CODE", "DOCROUTE_UNIT_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    # Nothing listens on port 1: the client gives up after --idle-exit without having consumed (exit 1).
    url = "amqp://unit:secret@127.0.0.1:1/docroute"
    assert main([*BASE, "--token", "tok", "--amqp-url", url, "--idle-exit", "0.5"]) == 1
    err = capsys.readouterr().err
    assert "docroute-unit: warning: --token on the command line is visible" in err
    assert "docroute-unit: warning: --amqp-url on the command line is visible" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "one non-empty line"), ("a\nb", "one non-empty line"), (None, "cannot read")],
)
def test_bad_secret_files_name_the_option(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "token"
    if content is not None:
        private_file(path, content)
    with pytest.raises(ConfigError, match=f"--token-file.*{message}"):
        parse_config(
            [*BASE, "--amqp-url-file", str(private_file(tmp_path / "u", AMQP)), "--token-file", str(path)], {}
        )


def test_a_secret_file_readable_by_others_is_warned_about(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("tok", encoding="utf-8")
    token.chmod(0o644)
    config = parse_config([*BASE, "--token-file", str(token)], {"DOCROUTE_UNIT_AMQP_URL": AMQP})
    assert config.token == "tok"
    assert config.warnings and "readable by other accounts" in config.warnings[0]


def test_a_flag_and_its_file_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--token and --token-file"):
        parse_config([*BASE, "--token", "t", "--token-file", str(private_file(tmp_path / "t", "t"))], {})


def test_a_cluster_url_list_gives_one_connection_target_per_node() -> None:
    from docroute_unit.consumer import connection_parameters

    nodes = "amqps://unit:secret@mq1.example:5671/docroute;amqps://unit:secret@mq2.example:5671/docroute"
    config = parse_config(["--amqp-url", nodes, "--unit", "BPTV"], {})
    params = connection_parameters(config)
    assert [(p.host, p.port, p.virtual_host) for p in params] == [
        ("mq1.example", 5671, "docroute"),
        ("mq2.example", 5671, "docroute"),
    ]
    assert all(p.connection_attempts == 1 and p.heartbeat == 30 for p in params)
    with pytest.raises(ConfigError, match="--amqp-url"):
        parse_config(["--amqp-url", f"{nodes};http://mq3.example/", "--unit", "BPTV"], {})
