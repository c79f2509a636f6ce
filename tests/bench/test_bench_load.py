"""The open-loop sender: its schedule, and what it reports when the server cannot keep up."""

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.load import Request, open_loop


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    pause = 0.0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.pause)
        self.send_response(201)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def _post(_index: int) -> Request:
    return Request("POST", "/x", b"{}", {"Content-Type": "application/json", "Content-Length": "2"})


def test_a_server_that_keeps_up_gets_the_rate_on_schedule(server):
    url, _ = server
    sent, achieved = open_loop(url, _post, rate=40, duration=1.0, senders=4)
    assert [s.status for s in sent] == [201] * 40
    assert 36 <= achieved <= 44
    assert max(s.started - s.due for s in sent) < 0.1


def test_when_every_sender_waits_requests_leave_late_and_the_rate_says_so(server):
    url, handler = server
    handler.pause = 0.1  # two senders can send 20 requests a second, not 40
    sent, achieved = open_loop(url, _post, rate=40, duration=1.0, senders=2)
    assert len(sent) == 40
    assert achieved < 25
    lags = sorted(s.started - s.due for s in sent)
    assert lags[-1] > 0.6  # the last request went out about a second after it was due
