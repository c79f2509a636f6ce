"""What leaves the process locally: data lines on stdout, JSON log lines on stderr."""

from __future__ import annotations

import io
import json
import logging

import pytest
from docroute_unit.handoff import SinkClosed, StdoutSink
from docroute_unit.logs import configure_logging
from docroute_unit.messages import decode

from .support import encode, task_offer


def test_stdout_sink_writes_one_flushed_utf8_line_per_message() -> None:
    stream = io.BytesIO()
    doc = task_offer("BPTV", 3)
    StdoutSink(stream).deliver(decode(encode(doc), unit="BPTV"))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0].decode("utf-8")) == doc


def test_stdout_sink_reports_a_closed_stream_as_final() -> None:
    stream = io.BytesIO()
    stream.close()
    with pytest.raises(SinkClosed):
        StdoutSink(stream).deliver(decode(encode(task_offer("BPTV", 1)), unit="BPTV"))


def test_logs_are_json_lines_with_fields_and_vietnamese_intact() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream)
    try:
        logging.getLogger("docroute_unit.test").warning("đã nhận", extra={"task_id": "t1", "attempt": 2})
        logging.getLogger("docroute_unit.test").debug("hidden")
    finally:
        logging.getLogger().handlers.clear()
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(entries) == 1
    assert entries[0]["message"] == "đã nhận"
    assert entries[0]["level"] == "WARNING"
    assert (entries[0]["task_id"], entries[0]["attempt"]) == ("t1", 2)
