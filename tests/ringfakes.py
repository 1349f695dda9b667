"""Part 2 parts played by the attack tests: a listening peer or tracker whose every
connection is handled by a function of the test (answer, drip, hold it open...), and
one-message exchanges from a chosen source address. Everything read goes through the
restricted decoder."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from cs457p2p.core.answers import AnswerParser
from cs457p2p.core.decoder import DecodeError, decode
from cs457p2p.core.wire2 import Message, encode_message

#: What a handler gets: the connection (with a timeout set) and the first message read
#: (None: the other side sent nothing whole within the timeout, or closed).
Handler = Callable[[socket.socket, Any], None]


def read_message(conn: socket.socket, timeout: float = 5.0) -> Any:
    """The first whole pickle on ``conn`` (None: nothing whole before EOF or timeout)."""
    conn.settimeout(timeout)
    parser = AnswerParser()
    with contextlib.suppress(OSError, DecodeError):
        while True:
            data = conn.recv(65536)
            if not data:
                return None
            values = parser.feed(data, 1)
            if values:
                return values[0]
    return None


class Fake:
    """A threaded TCP listener on ``host`` (a free port): each connection is counted,
    its first message read and kept (:attr:`got`, with the time), then handed to
    ``handler`` (default: nothing, then close)."""

    def __init__(self, host: str, handler: Handler | None = None, read: bool = True) -> None:
        self.sock = socket.create_server((host, 0), backlog=1024)
        self.sock.settimeout(0.1)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.handler = handler
        self.read = read
        self.connections = 0
        self.got: list[tuple[float, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def messages(self, tag: str | None = None) -> list[Any]:
        with self._lock:
            return [m for _, m in self.got if tag is None or (m is not None and m[0] == tag)]

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with self._lock:
                self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            message = read_message(conn) if self.read else None
            with self._lock:
                self.got.append((time.monotonic(), message))
            if self.handler is not None:
                with contextlib.suppress(OSError):
                    self.handler(conn, message)

    def close(self) -> None:
        self._stop.set()
        self._accepter.join(5)
        self.sock.close()

    def __enter__(self) -> Fake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def say(port: int, message: Message | bytes, src: str, host: str = "127.0.0.1") -> Any:
    """One message on one connection from ``src``; the decoded answer (None: none)."""
    data = message if isinstance(message, bytes) else encode_message(message)
    with socket.socket() as s:
        s.settimeout(10)
        s.bind((src, 0))
        s.connect((host, port))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = b""
        with contextlib.suppress(OSError):
            while chunk := s.recv(65536):
                got += chunk
    return decode(got) if got else None


def answer_pings(name: str) -> Handler:
    """A handler that answers a PING with ``('ACK', name)`` and closes."""

    def handle(conn: socket.socket, message: Any) -> None:
        if message is not None and message[0] == "PING":
            conn.sendall(encode_message_tuple(("ACK", name)))

    return handle


def encode_message_tuple(value: tuple[Any, ...]) -> bytes:
    """A tuple pickled as our programs write Part 2 messages (protocol 2)."""
    from cs457p2p.core.wire import encode

    return encode(value)
