"""JSON log lines carry the correlation id of the current scope; Vietnamese stays readable."""

import contextvars
import io
import json
import logging
import threading

from shared.logs import (
    JsonFormatter,
    configure_logging,
    correlation_scope,
    current_correlation_id,
    reset_correlation_id,
    set_correlation_id,
)


def _record(msg: str, **extra) -> logging.LogRecord:
    logger = logging.getLogger("docroute.test")
    return logger.makeRecord("docroute.test", logging.WARNING, __file__, 1, msg, (), None, extra=extra)


def test_formatter_writes_one_json_object_with_the_required_fields():
    with correlation_scope("corr-1"):
        line = JsonFormatter().format(_record("Đã tiếp nhận văn bản đến", directive_id="d-1"))
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "WARNING"
    assert data["logger"] == "docroute.test"
    assert data["message"] == "Đã tiếp nhận văn bản đến"
    assert data["correlation_id"] == "corr-1"
    assert data["directive_id"] == "d-1"
    assert data["ts"].endswith("+00:00")
    assert "Đã tiếp nhận" in line  # not \u-escaped


def in_fresh_context(fn):
    """Runs fn in an empty context, so a correlation id leaked by an earlier test cannot interfere."""
    return contextvars.Context().run(fn)


def test_outside_a_scope_the_correlation_id_is_null():
    def check():
        assert current_correlation_id() is None
        assert json.loads(JsonFormatter().format(_record("x")))["correlation_id"] is None

    in_fresh_context(check)


def test_unserialisable_extras_and_exceptions_still_make_a_line():
    try:
        raise ValueError("hỏng")
    except ValueError:
        import sys

        record = _record("failed", thing=object())
        record.exc_info = sys.exc_info()
    data = json.loads(JsonFormatter().format(record))
    assert data["thing"].startswith("<object")
    assert "ValueError: hỏng" in data["exc_info"]


def test_scopes_nest_and_restore():
    def check():
        with correlation_scope("outer"):
            with correlation_scope() as inner:
                assert current_correlation_id() == inner != "outer"
            assert current_correlation_id() == "outer"
        assert current_correlation_id() is None

    in_fresh_context(check)


def test_set_and_reset_for_request_hooks():
    def check():
        token = set_correlation_id("req-9")
        assert current_correlation_id() == "req-9"
        reset_correlation_id(token)
        assert current_correlation_id() is None

    in_fresh_context(check)


def test_correlation_id_is_per_thread():
    seen = []
    with correlation_scope("main-thread"):
        t = threading.Thread(target=lambda: seen.append(current_correlation_id()))
        t.start()
        t.join()
    assert seen == [None]


def test_configure_logging_is_idempotent_and_emits_json():
    stream = io.StringIO()
    root = logging.getLogger()
    before = list(root.handlers)
    old_level = root.level
    try:
        configure_logging("INFO", stream=io.StringIO())
        configure_logging("info", stream=stream)
        added = [h for h in root.handlers if h not in before]
        assert len(added) == 1
        with correlation_scope("c-7"):
            logging.getLogger("docroute.x").info("Sở %s", "Thông tin và Truyền thông")
            logging.getLogger("docroute.x").debug("hidden")
        lines = stream.getvalue().splitlines()
        assert [json.loads(x)["message"] for x in lines] == ["Sở Thông tin và Truyền thông"]
        assert json.loads(lines[0])["correlation_id"] == "c-7"
    finally:
        for h in list(root.handlers):
            if h not in before:
                root.removeHandler(h)
        root.setLevel(old_level)
