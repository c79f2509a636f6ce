"""The `docroute-unit` command: read options, wire the pieces, run until stopped."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from docroute_unit.backoff import Backoff, FailureTracker
from docroute_unit.config import Config, ConfigError, parse_config
from docroute_unit.consumer import EXIT_FATAL, UnitConsumer
from docroute_unit.dedup import SeenTasks, StateFileError
from docroute_unit.handoff import HttpSink, Sink, SinkClosed, StdoutSink
from docroute_unit.logs import configure_logging
from docroute_unit.processor import TaskProcessor
from docroute_unit.routing_api import RoutingAcker

EXIT_USAGE = 2
log = logging.getLogger("docroute_unit")


def build_processor(config: Config, seen: SeenTasks, sink: Sink | None = None) -> TaskProcessor:
    if sink is None:
        sink = (
            StdoutSink(sys.stdout.buffer)
            if config.deliver_to == "stdout"
            else HttpSink(config.deliver_to, unit=config.unit, timeout=config.http_timeout)
        )
    acker = None
    if config.routing_url and config.token:
        acker = RoutingAcker(config.routing_url, config.token, timeout=config.http_timeout)
    return TaskProcessor(
        unit=config.unit,
        sink=sink,
        seen=seen,
        failures=FailureTracker(config.max_failures),
        retry_backoff=Backoff(config.retry_delay, max(config.retry_delay, config.retry_delay_max)),
        acker=acker,
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = parse_config(argv)
    except ConfigError as exc:
        print(f"docroute-unit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for warning in config.warnings:
        print(f"docroute-unit: warning: {warning}", file=sys.stderr)
    configure_logging(config.log_level)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Only a flag: the message in hand is finished and settled before the client leaves.
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        seen = SeenTasks(config.dedup_size, config.state_file)
    except StateFileError as exc:
        log.error("cannot use the state file", extra={"reason": str(exc)})
        return EXIT_FATAL
    try:
        log.info(
            "starting",
            extra={
                "unit": config.unit,
                "queue": config.queue,
                "deliver_to": config.deliver_to,
                "routing_receipts": bool(config.routing_url),
                "state_file": str(config.state_file) if config.state_file else None,
                "remembered": len(seen),
            },
        )
        consumer = UnitConsumer(config, build_processor(config, seen), stop)
        try:
            code = consumer.run()
        except SinkClosed as exc:
            log.error("the unit's side closed; stopping without acknowledging", extra={"reason": str(exc)})
            return EXIT_FATAL
        log.info("stopped", extra={"settled": consumer.settled, "exit_code": code})
        return code
    finally:
        seen.close()
