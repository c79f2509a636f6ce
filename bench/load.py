"""Load generation: closed-loop clients (N threads, keep-alive http.client) and an open-loop fixed rate.

Threads, not asyncio: the work per request is the server's, the client only waits on sockets, so a
few dozen threads with http.client cost little CPU on a 2-core machine (less than `requests`)."""

from __future__ import annotations

import contextlib
import http.client
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: dict[str, str]


class HttpClient:
    """One keep-alive connection; reconnects once when the server closed it between requests."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def send(self, request: Request) -> Response:
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(request.method, request.path, body=request.body, headers=request.headers)
                raw = conn.getresponse()
                body = raw.read()
                return Response(raw.status, body, {k.lower(): v for k, v in raw.getheaders()})
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None


@dataclass
class LoadResult:
    """Outcome of one load run: successes, failures, per-request latencies (s) and the measured window."""

    ok: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    first_error: str | None = None

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0


def closed_loop(
    base_url: str,
    make_request: Callable[[int, int], Request],
    *,
    clients: int,
    duration: float,
    warmup: float,
    expect: int,
) -> LoadResult:
    """`clients` threads each send back-to-back requests; only those finishing inside the measured window
    (after `warmup`, for `duration`) count. `make_request(client, n)` builds the n-th request of a client."""
    result = LoadResult()
    lock = threading.Lock()
    start_gate = threading.Barrier(clients + 1)
    window: dict[str, float] = {}

    def run(client_index: int) -> None:
        client = HttpClient(base_url)
        n = 0
        start_gate.wait()
        begin, end = window["begin"], window["end"]
        try:
            while True:
                request = make_request(client_index, n)
                n += 1
                sent = time.perf_counter()
                if sent >= end:
                    break
                try:
                    response = client.send(request)
                    status, error = response.status, None
                    if status != expect:
                        error = f"HTTP {status}: {response.body[:300]!r}"
                except OSError as exc:
                    status, error = 0, f"{type(exc).__name__}: {exc}"
                    client.close()
                done = time.perf_counter()
                if sent < begin or done > end:
                    continue
                with lock:
                    result.statuses[status] = result.statuses.get(status, 0) + 1
                    if error is None:
                        result.ok += 1
                        result.latencies.append(done - sent)
                    else:
                        result.failed += 1
                        result.first_error = result.first_error or error
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    now = time.perf_counter()
    window["begin"] = now + warmup
    window["end"] = now + warmup + duration
    start_gate.wait()
    for thread in threads:
        thread.join(timeout=warmup + duration + 60)
    result.elapsed = duration
    return result


@dataclass
class Sent:
    """One open-loop request: when it was due and went out (perf_counter), when its answer came (wall
    clock) and what it said."""

    due: float
    started: float
    answered_at: float
    latency: float
    status: int
    body: bytes


def open_loop(
    base_url: str,
    make_request: Callable[[int], Request],
    *,
    rate: float,
    duration: float,
    senders: int,
    on_answer: Callable[[int, Sent], Any] | None = None,
) -> tuple[list[Sent], float]:
    """Issues requests at a steady `rate` per second for `duration` s from a pool of `senders` threads;
    returns every answer and the achieved send rate. A late sender does not shift the schedule: when every
    sender is waiting for an answer, requests queue here and go out late (`Sent.started - Sent.due`), and
    the achieved rate is the requests over the time from the schedule's start to the last one's sending."""
    total = int(rate * duration)
    jobs: queue.Queue[tuple[int, float] | None] = queue.Queue()
    results: list[Sent] = []
    lock = threading.Lock()

    def run() -> None:
        client = HttpClient(base_url)
        try:
            while (job := jobs.get()) is not None:
                index, due = job
                started = time.perf_counter()
                try:
                    response = client.send(make_request(index))
                    status, body = response.status, response.body
                except OSError as exc:
                    status, body = 0, str(exc).encode()
                    client.close()
                sent = Sent(
                    due=due,
                    started=started,
                    answered_at=time.time(),
                    latency=time.perf_counter() - started,
                    status=status,
                    body=body,
                )
                with lock:
                    results.append(sent)
                if on_answer is not None:
                    on_answer(index, sent)
        finally:
            client.close()

    threads = [threading.Thread(target=run, daemon=True) for _ in range(senders)]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        jobs.put((index, due))
    for _ in threads:
        jobs.put(None)
    for thread in threads:
        thread.join(timeout=120)
    issued = max((s.started for s in results), default=start) - start
    return results, (len(results) - 1) / issued if issued > 0 and len(results) > 1 else 0.0
