"""What bench/ring_attacks.py plays and measures with: processes of the checkout under
test (``python -m cs457p2p`` with ``PYTHONPATH`` in :data:`ENV`), their output line by
line, their memory, open files and CPU; one-message exchanges from a chosen address;
listeners that answer as a peer or a tracker would, or drip, or hold. What is read goes
through this checkout's restricted decoder."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cs457p2p.core.answers import AnswerParser
from cs457p2p.core.decoder import DecodeError
from cs457p2p.core.wire import encode

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "cs457p2p"]
ENV = dict(os.environ)
FIVE = "blue skies and snowy peaks"


# ----------------------------------------------------------------------- processes


@contextlib.contextmanager
def process(*args: str, limit_files: int | None = None) -> Iterator[subprocess.Popen[str]]:
    def limit() -> None:
        if limit_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit_files, limit_files))

    p = subprocess.Popen(
        [*CLI, *args], env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=limit,
    )  # fmt: skip
    try:
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(10)


class Lines:
    """A stream's lines as they come, in a thread."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line)

    def wait(self, pattern: str, timeout: float) -> re.Match[str] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                m = re.search(pattern, line)
                if m:
                    return m
            time.sleep(0.02)
        return None

    def count(self, pattern: str) -> int:
        return sum(1 for line in list(self.lines) if re.search(pattern, line))


@contextlib.contextmanager
def tracker(*args: str) -> Iterator[tuple[int, subprocess.Popen[str], Lines]]:
    with process("tracker", "--host", "127.0.0.1", "--port", "0", *args) as p:
        err = Lines(p.stderr)
        m = err.wait(r"^listening on \S+:(\d+) ", 10)
        if m is None:
            raise SystemExit(f"the tracker did not start: {err.lines}")
        yield int(m[1]), p, err


def peer(port: int, handle: str, host: str, *args: str, **kw: Any) -> Any:
    return process(
        "peer", "--tracker", f"127.0.0.1:{port}", "--handle", handle, "--listen", host,
        *args, **kw,
    )  # fmt: skip


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------ sockets


def say(port: int, value: tuple[Any, ...] | bytes, src: str, host: str = "127.0.0.1") -> Any:
    """One message on one connection from ``src``; the first answer decoded (None)."""
    data = value if isinstance(value, bytes) else encode(value)
    try:
        with socket.socket() as s:
            s.settimeout(10)
            s.bind((src, 0))
            s.connect((host, port))
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            parser = AnswerParser()
            while chunk := s.recv(65536):
                got = parser.feed(chunk, 1)
                if got:
                    return got[0]
    except (OSError, DecodeError):
        return None
    return None


class Listener:
    """Accepts on ``host``, counts connections, reads a first message, and hands it to
    ``handle`` (None: close at once)."""

    def __init__(
        self,
        host: str,
        handle: Callable[[socket.socket, Any], None] | None = None,
        raw: bool = False,
    ) -> None:
        self.sock = socket.create_server((host, 0), backlog=4096)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.handle = handle
        self.raw = raw  # (the handler reads the connection itself: given None)
        self.connections = 0
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            if self.handle is None:
                conn.close()
            else:
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError, DecodeError):
            conn.settimeout(5)
            if self.raw:
                assert self.handle is not None
                self.handle(conn, None)
                return
            parser = AnswerParser()
            while chunk := conn.recv(65536):
                got = parser.feed(chunk, 1)
                if got:
                    assert self.handle is not None
                    self.handle(conn, got[0])
                    return

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


def ack(name: str) -> Callable[[socket.socket, Any], None]:
    def handle(conn: socket.socket, message: Any) -> None:
        if message[0] == "PING":
            conn.sendall(encode(("ACK", name)))

    return handle


class FakeTracker(Listener):
    """A tracker: REGISTER answered by ``reg_init`` (bytes, or a function writing to
    the connection), anything else 'Bad request'; REGISTERs counted."""

    def __init__(self, reg_init: bytes | Callable[[socket.socket], None]) -> None:
        self.registers = 0
        self.reg_init = reg_init
        super().__init__("127.0.0.1", self._answer)

    def _answer(self, conn: socket.socket, message: Any) -> None:
        if message[0] != "REGISTER":
            conn.sendall(encode(("[Tracker]", "Bad request")))
            return
        self.registers += 1
        if callable(self.reg_init):
            self.reg_init(conn)
        else:
            conn.sendall(self.reg_init)


def dripping(data: bytes, every: float) -> Callable[[socket.socket], None]:
    def drip(conn: socket.socket) -> None:
        for byte in data:
            conn.sendall(bytes([byte]))
            time.sleep(every)

    return drip
