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
