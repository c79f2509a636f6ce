"""A controllable TCP proxy for fault injection: forward, refuse new connections, freeze, cut open ones."""

from __future__ import annotations

import contextlib
import enum
import socket
import struct
import threading
from types import TracebackType

_POLL = 0.1  # how often a pump or the acceptor looks at the mode again
_CHUNK = 65536
_Pair = tuple[socket.socket, socket.socket]  # (client side, upstream side)


class Mode(enum.Enum):
    """What the proxy does with traffic."""

    FORWARD = "forward"  # passes bytes both ways
    REFUSE = "refuse"  # listener closed: connect() is refused; open connections were dropped
    FREEZE = "freeze"  # connections are accepted and kept, but not a byte moves either way


class TcpProxy:
    """Forwards connections from a free loopback port to `upstream`, and can play an unreachable server.

    - `refuse()`: drops every open connection and refuses new ones (ECONNREFUSED), as a stopped server;
    - `freeze()`: keeps connections open (and accepts new ones) but forwards nothing, as a hung server or a
      network that silently drops packets: clients block until their own timeouts;
    - `cut()`: drops every open connection once (both sides see a reset/EOF); new ones still work;
    - `restore()`: forwards again (after a refusal, on the same port).

    Started on construction; `close()` (or the `with` block) stops it. Thread-based and standard library
    only, so a test or a fault run can import it without anything else.
    """

    def __init__(self, upstream: tuple[str, int], *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = upstream
        self.host = host
        self._lock = threading.Lock()
        self._mode = Mode.FORWARD
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        self._pairs: list[_Pair] = []
        listener = self._listen(port)
        self._listener: socket.socket | None = listener
        self.port: int = listener.getsockname()[1]
        self._acceptor = self._start_acceptor(listener)

    # -- public controls ---------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def connections(self) -> int:
        """Connections currently open through the proxy."""
        with self._lock:
            return len(self._pairs)

    def refuse(self) -> None:
        """Drop every open connection and refuse new ones until `restore()`."""
        with self._lock:
            self._mode = Mode.REFUSE
            self._flowing.clear()
            listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)
        self.cut()

    def freeze(self) -> None:
        """Stop forwarding in both directions, keeping every connection open, until `restore()`."""
        with self._lock:
            self._mode = Mode.FREEZE
            self._flowing.clear()

    def cut(self) -> None:
        """Drop every open connection now (new connections are handled per the current mode)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, upstream in pairs:
            _drop(client)
            _drop(upstream)

    def restore(self) -> None:
        """Forward again; after `refuse()` the same port listens again."""
        with self._lock:
            if self._closed:
                return
            if self._listener is None:
                self._listener = self._listen(self.port)
                self._acceptor = self._start_acceptor(self._listener)
            self._mode = Mode.FORWARD
            self._flowing.set()

    def close(self) -> None:
        """Stop listening and drop every connection."""
        with self._lock:
            self._closed = True
            listener, self._listener = self._listener, None
            self._flowing.set()  # frees pumps waiting on a freeze, so they notice the close
        if listener is not None:
            _close(listener)
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- machinery ---------------------------------------------------------------------------------

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, port))
        listener.listen(64)
        listener.settimeout(_POLL)
        return listener

    def _start_acceptor(self, listener: socket.socket) -> threading.Thread:
        thread = threading.Thread(target=self._accept, args=(listener,), name="tcp-proxy-accept", daemon=True)
        thread.start()
        return thread

    def _accept(self, listener: socket.socket) -> None:
        while True:
            with self._lock:
                if self._closed or self._listener is not listener:
                    return
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _drop(client)  # the server itself is away: the client sees its connection closed
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._closed:
                    _drop(client)
                    _drop(upstream)
                    return
                self._pairs.append((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(src, dst, (client, upstream)), name="tcp-proxy-pump", daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, pair: _Pair) -> None:
        try:
            src.settimeout(_POLL)
            while True:
                # While frozen nothing is read, so the peers' kernels buffer and then block their writers.
                while not self._flowing.wait(_POLL):
                    if not self._alive(pair):
                        return
                try:
                    data = src.recv(_CHUNK)
                except TimeoutError:
                    if not self._alive(pair):
                        return
                    continue
                if not data:
                    return
                while not self._flowing.wait(_POLL):  # frozen between reading and writing: hold the bytes
                    if not self._alive(pair):
                        return
                dst.sendall(data)
        except OSError:
            return
        finally:
            self._forget(pair)

    def _alive(self, pair: _Pair) -> bool:
        with self._lock:
            return not self._closed and pair in self._pairs

    def _forget(self, pair: _Pair) -> None:
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)
        for sock in pair:
            _drop(sock)


def _drop(sock: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0), as a dropped connection looks to its peer, not a polite FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _close(sock)


def _close(sock: socket.socket) -> None:
    # shutdown first: a listener's fd stays open while another thread polls it, and it would accept
    # meanwhile; shutdown stops it listening at once.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
