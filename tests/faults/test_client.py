"""The careful client: one Idempotency-Key for every attempt, retries on 5xx, 429 and connection errors,
the wait the server asks for, and no retry of a request the server refused on its merits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chaos.client import CarefulClient, Submission


class _Script:
    def __init__(self, answers: list[tuple[int, dict[str, str]]]) -> None:
        self.answers = answers
        self.seen: list[tuple[float, str | None]] = []


@pytest.fixture
def server() -> Iterator[tuple[str, _Script]]:
    script = _Script([])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            script.seen.append((time.monotonic(), self.headers.get("Idempotency-Key")))
            status, headers = script.answers.pop(0) if script.answers else (201, {})
            body = b'{"id": "d-1", "arrival_number": 1}' if status == 201 else b'{"title": "no"}'
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()


def _submission() -> Submission:
    return Submission(
        serial=1, sample=0, metadata={"external_id": "x", "subject": "Về việc"}, files=(("a.pdf", b"%PDF"),)
    )


def test_retries_5xx_and_429_with_the_same_key_and_waits_as_told(server: tuple[str, _Script]) -> None:
    url, script = server
    script.answers = [(503, {"Retry-After": "1"}), (429, {"Retry-After": "1"}), (500, {})]
    outcome = CarefulClient(lambda: url, "token").register(_submission())
    assert outcome.accepted and outcome.directive_id == "d-1"
    assert outcome.attempts == 4
    assert outcome.seen == {"503": 1, "429": 1, "500": 1, "201": 1}
    keys = {key for _, key in script.seen}
    assert keys == {outcome.submission.key}
    times = [at for at, _ in script.seen]
    assert times[1] - times[0] >= 0.9 and times[2] - times[1] >= 0.9


def test_a_refusal_on_its_merits_is_not_retried(server: tuple[str, _Script]) -> None:
    url, script = server
    script.answers = [(422, {})]
    outcome = CarefulClient(lambda: url, "token").register(_submission())
    assert (
        not outcome.accepted and outcome.attempts == 1 and outcome.error and outcome.error.startswith("422")
    )


def test_connection_errors_are_retried_until_the_deadline() -> None:
    from chaos.servers import free_port

    port = free_port()  # nobody listens
    started = time.monotonic()
    outcome = CarefulClient(lambda: f"http://127.0.0.1:{port}", "token", deadline=2.0).register(_submission())
    assert not outcome.accepted
    assert outcome.seen["connection error"] >= 3
    assert time.monotonic() - started < 5
