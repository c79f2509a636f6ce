"""The client's options, from the command line first and `DOCROUTE_UNIT_*` environment variables second."""

from __future__ import annotations

import argparse
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# Unit codes become part of a queue name and a permission regex, so keep them to a safe alphabet.
UNIT_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class ConfigError(Exception):
    """A missing or malformed option; the message names it."""


@dataclass(frozen=True)
class Config:
    amqp_url: str
    unit: str
    routing_url: str | None = None
    token: str | None = None
    deliver_to: str = "stdout"
    prefetch: int = 10
    max_messages: int | None = None
    idle_exit: float | None = None
    state_file: Path | None = None
    dedup_size: int = 10_000
    max_failures: int = 5
    retry_delay: float = 0.5
    retry_delay_max: float = 10.0
    reconnect_delay_max: float = 30.0
    http_timeout: float = 10.0
    heartbeat: int = 30
    log_level: str = "INFO"
    # Said on stderr at start: secrets given where other accounts can read them.
    warnings: tuple[str, ...] = ()

    @property
    def queue(self) -> str:
        return f"routing.tasks.{self.unit}"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="docroute-unit",
        description="Take this unit's tasks from its docroute queue and hand each on exactly where the "
        "unit wants it (stdout or an HTTP hook), acknowledging only after the hand-off succeeded.",
    )
    p.add_argument("--amqp-url", help="broker URL with the unit's credentials [DOCROUTE_UNIT_AMQP_URL]")
    p.add_argument(
        "--amqp-url-file",
        help="file holding the broker URL, so its password stays off the command line "
        "[DOCROUTE_UNIT_AMQP_URL_FILE]",
    )
    p.add_argument("--unit", help="the unit code, e.g. PVHTT.DONGXOAI [DOCROUTE_UNIT_CODE]")
    p.add_argument("--routing-url", help="routing service base URL for receipts [DOCROUTE_UNIT_ROUTING_URL]")
    p.add_argument("--token", help="the unit's bearer token for the routing service [DOCROUTE_UNIT_TOKEN]")
    p.add_argument("--token-file", help="file holding the unit's bearer token [DOCROUTE_UNIT_TOKEN_FILE]")
    p.add_argument(
        "--deliver-to", help="'stdout' (default) or an http(s):// hook URL [DOCROUTE_UNIT_DELIVER_TO]"
    )
    p.add_argument("--prefetch", type=_positive_int, default=10, help="unacknowledged messages held (10)")
    p.add_argument("--max-messages", type=_positive_int, help="exit 0 after this many messages are settled")
    p.add_argument("--idle-exit", type=_non_negative_float, help="exit 0 after SECONDS without a message")
    p.add_argument(
        "--state-file", help="journal of handed-on tasks that survives restarts [DOCROUTE_UNIT_STATE_FILE]"
    )
    p.add_argument("--dedup-size", type=_positive_int, default=10_000, help="task ids remembered (10000)")
    p.add_argument(
        "--max-failures", type=_positive_int, default=5, help="failures of one message before the DLQ (5)"
    )
    p.add_argument("--retry-delay", type=_non_negative_float, default=0.5, help="first retry delay, s (0.5)")
    p.add_argument("--retry-delay-max", type=_non_negative_float, default=10.0, help="retry cap, s (10)")
    p.add_argument(
        "--reconnect-delay-max", type=_non_negative_float, default=30.0, help="reconnect delay cap, s (30)"
    )
    p.add_argument("--http-timeout", type=_non_negative_float, default=10.0, help="HTTP timeout, s (10)")
    p.add_argument("--heartbeat", type=_positive_int, default=30, help="AMQP heartbeat, s (30)")
    p.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="(INFO)"
    )
    return p


def amqp_urls(value: str) -> list[str]:
    """The nodes of a `;`-separated broker URL (a cluster's nodes, tried in turn), or the one URL."""
    return [part.strip() for part in value.split(";") if part.strip()] or [value]


def _check_url(name: str, url: str, schemes: tuple[str, ...]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"{name}: must be a {' or '.join(s + '://' for s in schemes)} URL")


def parse_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Build the Config; raise ConfigError for a bad combination (argparse exits on bad syntax)."""
    env = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)

    def pick(value: str | None, var: str) -> str | None:
        return value if value else (env.get(var) or None)

    warnings: list[str] = []
    amqp_url = _secret(
        "--amqp-url", args.amqp_url, args.amqp_url_file, env, "DOCROUTE_UNIT_AMQP_URL", warnings
    )
    unit = pick(args.unit, "DOCROUTE_UNIT_CODE")
    routing_url = pick(args.routing_url, "DOCROUTE_UNIT_ROUTING_URL")
    token = _secret("--token", args.token, args.token_file, env, "DOCROUTE_UNIT_TOKEN", warnings)
    deliver_to = pick(args.deliver_to, "DOCROUTE_UNIT_DELIVER_TO") or "stdout"
    state_file = pick(args.state_file, "DOCROUTE_UNIT_STATE_FILE")

    if not amqp_url:
        raise ConfigError("--amqp-url (DOCROUTE_UNIT_AMQP_URL): required")
    for node_url in amqp_urls(amqp_url):
        _check_url("--amqp-url (DOCROUTE_UNIT_AMQP_URL)", node_url, ("amqp", "amqps"))
    if not unit:
        raise ConfigError("--unit (DOCROUTE_UNIT_CODE): required")
    if not UNIT_CODE.match(unit):
        raise ConfigError("--unit (DOCROUTE_UNIT_CODE): letters, digits, '.', '_' and '-' only")
    if routing_url:
        _check_url("--routing-url (DOCROUTE_UNIT_ROUTING_URL)", routing_url, ("http", "https"))
        if not token:
            raise ConfigError("--token (DOCROUTE_UNIT_TOKEN): required with --routing-url")
    if deliver_to != "stdout":
        _check_url("--deliver-to (DOCROUTE_UNIT_DELIVER_TO)", deliver_to, ("http", "https"))
    return Config(
        amqp_url=amqp_url,
        unit=unit,
        routing_url=routing_url,
        token=token if routing_url else None,
        deliver_to=deliver_to,
        prefetch=args.prefetch,
        max_messages=args.max_messages,
        idle_exit=args.idle_exit,
        state_file=Path(state_file) if state_file else None,
        dedup_size=args.dedup_size,
        max_failures=args.max_failures,
        retry_delay=args.retry_delay,
        retry_delay_max=args.retry_delay_max,
        reconnect_delay_max=args.reconnect_delay_max,
        http_timeout=args.http_timeout,
        heartbeat=args.heartbeat,
        log_level=args.log_level,
        warnings=tuple(warnings),
    )


def _secret(
    flag: str,
    value: str | None,
    file: str | None,
    env: Mapping[str, str],
    var: str,
    warnings: list[str],
) -> str | None:
    """A secret option from its flag, its file flag, its variable or its file variable (in that order).

    A command line is readable by every account of the machine (`ps`, /proc/<pid>/cmdline): a token or a
    URL with a password given there is used, but with a warning naming the safer ways.
    """
    if value and file:
        raise ConfigError(f"{flag} and {flag}-file: give one of them")
    if value:
        if flag == "--token" or urlsplit(value).password:
            warnings.append(
                f"{flag} on the command line is visible to other users of this machine (ps); "
                f"use {flag}-file or {var} instead"
            )
        return value
    path = file or env.get(f"{var}_FILE") or None
    if path:
        return _read_secret_file(f"{flag}-file ({var}_FILE)", Path(path), warnings)
    return env.get(var) or None


def _read_secret_file(name: str, path: Path, warnings: list[str]) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
        mode = stat.S_IMODE(path.stat().st_mode)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc}") from None
    if not text or "\n" in text:
        raise ConfigError(f"{name}: {path} must hold exactly one non-empty line")
    if mode & 0o077:
        warnings.append(f"{name}: {path} is readable by other accounts (mode {mode:o}); chmod 600 it")
    return text
