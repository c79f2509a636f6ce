"""The HTTP hand-off and the routing receipt call, against a real local HTTP server."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from docroute_unit.handoff import HandOffError, HttpSink
from docroute_unit.messages import decode
from docroute_unit.routing_api import AckError, PermanentAckError, RoutingAcker

from .support import RecordingServer, encode, task_offer

pytestmark = pytest.mark.integration
UNIT = "PVHTT.LOCNINH"


def test_hook_receives_the_envelope_as_utf8_json_with_an_idempotency_key(
    http_server: Callable[..., RecordingServer],
) -> None:
    server = http_server(lambda _p, _n: 202)
    doc = task_offer(UNIT, 5, task_id="t5")
    HttpSink(server.url + "/hook", unit=UNIT).deliver(decode(encode(doc), unit=UNIT))
    path, headers, body = server.requests[0]
    assert path == "/hook"
    assert json.loads(body.decode("utf-8")) == doc
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["Idempotency-Key"] == "task:t5"
    assert headers["X-Docroute-Unit"] == UNIT


@pytest.mark.parametrize("status", [400, 500, 503])
def test_hook_answer_outside_2xx_is_a_failed_hand_off(
    http_server: Callable[..., RecordingServer], status: int
) -> None:
    server = http_server(lambda _p, _n: status)
    with pytest.raises(HandOffError, match=str(status)):
        HttpSink(server.url, unit=UNIT).deliver(decode(encode(task_offer(UNIT, 1)), unit=UNIT))


def test_unreachable_hook_is_a_failed_hand_off() -> None:
    with pytest.raises(HandOffError, match="unreachable"):
        HttpSink("http://127.0.0.1:9/", unit=UNIT, timeout=2).deliver(
            decode(encode(task_offer(UNIT, 1)), unit=UNIT)
        )


@pytest.mark.parametrize("status", [200, 409])
def test_receipt_accepted_or_already_recorded_counts_as_done(
    http_server: Callable[..., RecordingServer], status: int
) -> None:
    server = http_server(lambda _p, _n: status)
    assert RoutingAcker(server.url + "/", "tok-1").ack("t/1", correlation_id="c-1") == status
    path, headers, _body = server.requests[0]
    assert path == "/v1/tasks/t%2F1/ack"
    assert headers["Authorization"] == "Bearer tok-1"
    assert headers["X-Correlation-ID"] == "c-1"


@pytest.mark.parametrize("status", [401, 403, 404])
def test_receipt_refused_for_good(http_server: Callable[..., RecordingServer], status: int) -> None:
    server = http_server(lambda _p, _n: status)
    with pytest.raises(PermanentAckError):
        RoutingAcker(server.url, "tok").ack("t1")


@pytest.mark.parametrize("status", [429, 500, 503])
def test_receipt_refused_for_now(http_server: Callable[..., RecordingServer], status: int) -> None:
    server = http_server(lambda _p, _n: status)
    with pytest.raises(AckError) as info:
        RoutingAcker(server.url, "tok").ack("t1")
    assert not isinstance(info.value, PermanentAckError)


def test_unreachable_routing_service_is_a_transient_error() -> None:
    with pytest.raises(AckError) as info:
        RoutingAcker("http://127.0.0.1:9", "tok", timeout=2).ack("t1")
    assert not isinstance(info.value, PermanentAckError)
