"""Keeps a consumer's AMQP connection alive (heartbeats) while its thread is busy in a handler or a pause."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)


class HeartbeatKeeper:
    """Sends heartbeat frames on a connection while its consuming thread cannot.

    kombu sends heartbeats only between messages, from the thread that runs the handler. A handler that
    waits out a database outage, or one that is simply slow, would let the broker close the connection
    after two missed heartbeats, and the broker would count a delivery against every unacked message.
    While `busy(conn)` is open a helper thread writes a heartbeat frame every `heartbeat / 4` seconds;
    leaving `busy` waits for a frame being written, and the consuming thread settles messages inside
    `exclusive()`, so the two never write to the socket at the same time. Frames the broker sends
    meanwhile stay in the socket buffer (prefetch bounds the deliveries) and are read when the consuming
    thread drains again.
    """

    def __init__(self, heartbeat: float) -> None:
        self.interval = max(heartbeat / 4, 0.05)
        self._lock = threading.Lock()
        self._raw: Any = None
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def busy(self, connection: Any) -> Iterator[None]:
        """While open, heartbeats go out on `connection` (a kombu Connection; None or non-AMQP: no-op)."""
        raw = getattr(connection, "connection", None) if connection is not None else None
        if raw is None or not getattr(raw, "heartbeat", 0) or not hasattr(raw, "send_heartbeat"):
            yield
            return
        self._start()
        with self._lock:
            self._raw = raw
        try:
            yield
        finally:
            with self._lock:
                self._raw = None

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold off heartbeats while the consuming thread writes (ack, requeue, reject) inside `busy`:
        two threads writing one socket could interleave their frames."""
        with self._lock:
            yield

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._closed.clear()
            self._thread = threading.Thread(target=self._beat, name="consumer-heartbeats", daemon=True)
            self._thread.start()

    def _beat(self) -> None:
        while not self._closed.wait(self.interval):
            with self._lock:
                raw = self._raw
                if raw is None:
                    continue
                try:
                    raw.send_heartbeat()
                except Exception:  # the consuming thread meets the broken connection on its next read
                    log.debug("sending a heartbeat failed", exc_info=True)
                    self._raw = None

    def close(self) -> None:
        """Stop the helper thread (a later `busy` starts it again)."""
        self._closed.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(self.interval + 1)
