"""The fault-injection TCP proxy (chaos/proxy.py): forwards, refuses, freezes, cuts and comes back."""

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from chaos.proxy import Mode, TcpProxy


@pytest.fixture
def echo() -> Iterator[int]:
    """An echo server on a free loopback port."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    done = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=_quietly, args=(serve, conn), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    done.set()
    server.close()


def _quietly(serve, conn) -> None:
    with contextlib.suppress(OSError):
        serve(conn)


def roundtrip(port: int, data: bytes = "Sở Nội vụ".encode(), timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(data)
        return conn.recv(4096)


def test_it_forwards_both_ways(echo: int):
    with TcpProxy(("127.0.0.1", echo)) as proxy:
        assert proxy.mode is Mode.FORWARD
        assert roundtrip(proxy.port) == "Sở Nội vụ".encode()


def test_refuse_drops_open_connections_and_refuses_new_ones_until_restored(echo: int):
    with TcpProxy(("127.0.0.1", echo)) as proxy:
        conn = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        conn.sendall(b"a")
        assert conn.recv(10) == b"a"
        proxy.refuse()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        with pytest.raises(OSError):
            conn.sendall(b"b")
            if conn.recv(10) == b"":
                raise ConnectionResetError("closed")
        conn.close()
        proxy.restore()
        assert roundtrip(proxy.port, b"again") == b"again"


def test_freeze_keeps_connections_open_but_moves_nothing_until_restored(echo: int):
    with TcpProxy(("127.0.0.1", echo)) as proxy:
        conn = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        proxy.freeze()
        conn.settimeout(0.5)
        conn.sendall(b"held")
        with pytest.raises(TimeoutError):
            conn.recv(10)
        proxy.restore()
        conn.settimeout(5)
        assert conn.recv(10) == b"held"
        conn.close()


def test_cut_drops_open_connections_once_and_new_ones_work(echo: int):
    with TcpProxy(("127.0.0.1", echo)) as proxy:
        conn = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        conn.sendall(b"x")
        assert conn.recv(10) == b"x"
        assert proxy.connections == 1
        proxy.cut()
        try:
            got = conn.recv(10)
        except ConnectionResetError:
            got = b""
        assert got == b""
        conn.close()
        assert roundtrip(proxy.port, b"y") == b"y"
