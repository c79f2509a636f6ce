"""Test helpers for the unit client: routing-side topology, publishing, local HTTP servers, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pika

from tests.support.polling import wait_for as wait_for  # re-exported to this folder's tests

TASKS_EXCHANGE = "routing.tasks"
DLX = "docroute.dlx"
CLIENT_SRC = Path(__file__).resolve().parents[2] / "clients" / "unit"


def unique_unit(prefix: str = "PVHTT") -> str:
    return f"{prefix}.T{uuid.uuid4().hex[:8].upper()}"


def declare_unit_queue(url: str, code: str, *, delivery_limit: int = 5) -> None:
    """The topology the routing service declares for a unit (mirrors shared.messaging.declare_unit_queue)."""
    queue = f"routing.tasks.{code}"
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        ch = conn.channel()
        ch.exchange_declare(TASKS_EXCHANGE, "direct", durable=True)
        ch.exchange_declare(DLX, "direct", durable=True)
        ch.queue_declare(
            queue,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": delivery_limit,
                "x-dead-letter-exchange": DLX,
                "x-dead-letter-routing-key": f"{queue}.dlq",
            },
        )
        ch.queue_bind(queue, TASKS_EXCHANGE, routing_key=code)
        ch.queue_declare(f"{queue}.dlq", durable=True, arguments={"x-queue-type": "quorum"})
        ch.queue_bind(f"{queue}.dlq", DLX, routing_key=f"{queue}.dlq")


def publish(url: str, code: str, bodies: list[bytes]) -> None:
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        for body in bodies:
            ch.basic_publish(
                TASKS_EXCHANGE,
                code,
                body,
                pika.BasicProperties(content_type="application/json", delivery_mode=2),
                mandatory=True,
            )


def queue_depth(url: str, queue: str) -> int:
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)


def drain(url: str, queue: str) -> list[bytes]:
    bodies: list[bytes] = []
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        ch = conn.channel()
        while True:
            method, _props, body = ch.basic_get(queue)
            if method is None:
                return bodies
            bodies.append(body)
            ch.basic_ack(method.delivery_tag)


def envelope(type_: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "type": type_,
        "version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "correlation_id": str(uuid.uuid4()),
        "producer": "routing",
        "payload": payload,
    }


def task_offer(unit: str, n: int, *, task_id: str | None = None) -> dict[str, Any]:
    return envelope(
        "routing.task_offered",
        {
            "id": task_id or str(uuid.uuid4()),
            "directive_id": str(uuid.uuid4()),
            "number": f"{n}/KH-BCĐ",
            "subject": f"Kế hoạch tuyên truyền phòng, chống dịch bệnh số {n}",
            "issuer": "Ban Chỉ đạo tỉnh Bình Phước",
            "urgency": "khan",
            "arrival_number": n,
            "unit": unit,
            "role": "chu_tri",
            "title": "Triển khai tuyên truyền trên Cổng thông tin điện tử",
            "instructions": "Báo cáo kết quả về Sở Thông tin và Truyền thông",
            "due_at": "2021-08-15T17:00:00+07:00",
            "status": "offered",
            "attachments": [],
        },
    )


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


class RecordingServer:
    """A local HTTP server that records each POST and answers with `respond(path, n)` -> status."""

    def __init__(self, respond: Callable[[str, int], int] | None = None) -> None:
        self.requests: list[tuple[str, Message, bytes]] = []  # headers look up case-insensitively
        self.lock = threading.Lock()
        self.respond = respond or (lambda _path, _n: 200)
        self.release = threading.Event()  # lets a respond() callback block until the test lets go
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with server.lock:
                    server.requests.append((self.path, self.headers, body))
                    n = sum(1 for p, _h, _b in server.requests if p == self.path)
                status = server.respond(self.path, n)
                payload = b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def paths(self) -> list[str]:
        with self.lock:
            return [p for p, _h, _b in self.requests]

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [b for _p, _h, b in self.requests]

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class ClientProcess:
    """`python -m docroute_unit ...` as a child process; stdout lines are collected as they arrive."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self.lines: list[bytes] = []
        self._lock = threading.Lock()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("DOCROUTE_UNIT_AMQP_URL", None)
        self._stderr = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "docroute_unit", *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line)

    def documents(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(line) for line in self.lines]

    def wait_lines(self, n: int, timeout: float = 15.0) -> None:
        try:
            wait_for(lambda: len(self.lines) >= n or self.proc.poll() is not None, timeout)
        except AssertionError:
            raise AssertionError(f"{len(self.lines)} of {n} lines; log:\n{self.log()}") from None
        assert len(self.lines) >= n, (
            f"exited {self.proc.returncode} after {len(self.lines)} lines:\n{self.log()}"
        )

    def wait(self, timeout: float = 20.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def log(self) -> str:
        self._stderr.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._stderr.close()
