"""Stand-ins of the course's reference programs (docs/PROTOCOL.md says how they behave on
the wire), for the integration tests.

Nothing here uses cs457p2p's tracker, client or protocol code: requests and answers are
decoded with :func:`cs457p2p.core.decoder.decode` only (never ``pickle.loads``), and the
Python 2 protocol-0 pickles the course's reference tracker sends are written by
:func:`cs457p2p.core.py2.dumps_py2` (checked against a real Python 2.7 in
test_py2.py).

* :class:`ReferenceTracker`: behaves like the Python 2 reference tracker (one request
  per connection, a single ``recv(1024)``, one answer, close); counts connections.
* :func:`reference_fetch`: a reference-style student client (one connection per request,
  read until EOF, place by SEQNUM).
* :class:`LyingTracker`: a reference-style tracker that lies in one of :data:`LIES`.
* :class:`DroppingTracker`: a persistent tracker that drops every connection after
  ``k`` answers (and half of the next one).
* :class:`CountingProxy`: a TCP relay that counts the connections going through it.
"""

from __future__ import annotations

import contextlib
import io
import pickletools
import shlex
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cs457p2p.core.addresses import format_address
from cs457p2p.core.decoder import DecodeError, decode
from cs457p2p.core.py2 import dumps_py2 as dumps_p0
from cs457p2p.core.py2 import py2_repr
from cs457p2p.net import free_port as free_port  # (the tests take it from here)

REGISTER = b"REGISTER"
BAD_REQUEST_TEXT = "Bad request"

#: The reference database (16 items) and its message, from docs/PROTOCOL.md.
REFERENCE_MESSAGE = "Now is the time for all good coders to review the use of threads in python."
#: A stored (shuffled) order for the stand-ins: position i holds REFERENCE_ITEMS[i].
REFERENCE_ITEMS: tuple[tuple[int, str], ...] = tuple(
    (seq, REFERENCE_MESSAGE.split()[seq])
    for seq in (5, 11, 0, 15, 7, 2, 9, 13, 1, 4, 14, 3, 8, 12, 6, 10)
)

#: Seconds any socket operation of a stand-in may block.
IO_TIMEOUT = 10.0


# --------------------------------------------------------------------- Python 2 pickles


BAD_REQUEST_P0 = dumps_p0(BAD_REQUEST_TEXT)


def evil_pickle(command: str, protocol: int = 0) -> bytes:
    """A pickle that makes the stock unpickler run ``os.system(command)``
    (GLOBAL/STACK_GLOBAL ``os.system``, then REDUCE)."""
    if protocol == 0:
        return b"cos\nsystem\n(S" + py2_repr(command.encode()) + b"\ntR."
    cmd = command.encode()
    return (
        b"\x80\x04\x8c\x02os\x8c\x06system\x93"
        + b"X"
        + len(cmd).to_bytes(4, "little")
        + cmd
        + b"\x85R."
    )


def touch_command(marker: Path) -> str:
    """The shell command an evil pickle runs: create ``marker``."""
    return f"touch {shlex.quote(str(marker))}"


# ----------------------------------------------------------------------- pickle streams


def first_pickle_end(buf: bytes) -> int | None:
    """Where the first pickle in ``buf`` ends (just after STOP), found by scanning the
    opcodes with :mod:`pickletools` (nothing is built); None if incomplete or invalid."""
    try:
        for opcode, _arg, pos in pickletools.genops(io.BytesIO(buf)):
            if opcode.name == "STOP":
                return int(pos) + 1
    except ValueError:
        return None
    return None


def decode_first(buf: bytes) -> Any:
    """What ``pickle.loads(buf)`` would return (it ignores bytes after STOP), but decoded
    with the restricted decoder. Raises :class:`DecodeError` when that refuses."""
    end = first_pickle_end(buf)
    if end is None:
        raise DecodeError("not a complete pickle")
    return decode(buf[:end])


def split_pickles(buf: bytes) -> tuple[list[Any], bytes]:
    """Decode the complete pickles at the start of ``buf``; return them and the rest."""
    values = []
    while buf:
        end = first_pickle_end(buf)
        if end is None:
            break
        values.append(decode(buf[:end]))
        buf = buf[end:]
    return values, buf


def is_bad_request(value: Any) -> bool:
    return value == BAD_REQUEST_TEXT


# --------------------------------------------------------------------- client sockets


def connect(host: str, port: int, timeout: float = IO_TIMEOUT) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until_eof(s: socket.socket, timeout: float = IO_TIMEOUT) -> bytes:
    """Everything the peer sends until it closes; raises TimeoutError past ``timeout``."""
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no EOF from the peer in time")
        s.settimeout(left)
        data = s.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def exchange(host: str, port: int, request: bytes, timeout: float = IO_TIMEOUT) -> bytes:
    """A reference-style request: connect, send, read the answer until EOF."""
    with connect(host, port, timeout) as s:
        s.sendall(request)
        return read_until_eof(s, timeout)


def read_answers(s: socket.socket, count: int, timeout: float = IO_TIMEOUT) -> list[Any]:
    """Read from a persistent connection until ``count`` pickles are decoded."""
    deadline = time.monotonic() + timeout
    buf = b""
    values: list[Any] = []
    while len(values) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"only {len(values)} of {count} answers in time")
        s.settimeout(left)
        data = s.recv(65536)
        if not data:
            raise ConnectionError(f"EOF after {len(values)} of {count} answers")
        more, buf = split_pickles(buf + data)
        values.extend(more)
    if buf:
        raise AssertionError(f"bytes after the last expected answer: {buf[:40]!r}")
    return values


class ReferenceClientError(Exception):
    pass


def reference_fetch(host: str, port: int, protocol: int = 2, timeout: float = IO_TIMEOUT) -> str:
    """A reference-style student client: REGISTER, then one connection per position,
    each answer read until EOF and decoded, VALUE placed at index SEQNUM."""
    n = decode(exchange(host, port, REGISTER, timeout))
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ReferenceClientError(f"bad REGISTER answer {n!r}")
    db: list[str | None] = [None] * n
    for i in range(n):
        request = dumps_p0(i) if protocol == 0 else _dumps_p2_int(i)
        answer = decode(exchange(host, port, request, timeout))
        if not (isinstance(answer, tuple) and len(answer) == 2):
            raise ReferenceClientError(f"position {i}: bad answer {answer!r}")
        seq, value = answer
        if not isinstance(seq, int) or not 0 <= seq < n or db[seq] is not None:
            raise ReferenceClientError(f"position {i}: bad SEQNUM {seq!r}")
        db[seq] = value
    return " ".join(str(v) for v in db)


def _dumps_p2_int(i: int) -> bytes:
    """``pickle.dumps(i, protocol=2)`` for a non-negative int (written by hand)."""
    if i < 256:
        return b"\x80\x02K" + bytes([i]) + b"."
    if i < 65536:
        return b"\x80\x02M" + i.to_bytes(2, "little") + b"."
    return b"\x80\x02J" + i.to_bytes(4, "little", signed=True) + b"."


# ---------------------------------------------------------------------- stand-in servers


class _Hang:
    def __repr__(self) -> str:
        return "HANG"


#: A responder's answer meaning "never answer" (the connection stays open, silent).
HANG = _Hang()
#: A responder's answer meaning "close without answering".
CLOSE = None


class Drip:
    """A responder's answer sent one byte every ``interval`` seconds."""

    def __init__(self, data: bytes, interval: float = 0.3) -> None:
        self.data = data
        self.interval = interval


Answer = bytes | _Hang | Drip | None


class StandinServer:
    """A threaded TCP server on a loopback address and a free port. Every accepted
    connection is counted (peer addresses kept) and handled by ``handle`` in a thread.
    Use as a context manager; :meth:`close` stops everything."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.host = host
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self._sock.listen(512)
        self._sock.settimeout(0.05)
        self.port: int = self._sock.getsockname()[1]
        self.connections = 0
        self.peers: list[str] = []
        self.requests: list[bytes] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def record(self, request: bytes) -> None:
        with self._lock:
            self.requests.append(request)

    def wait_stopped(self, seconds: float) -> bool:
        return self._stop.wait(seconds)

    def accepted(self, at_least: int, timeout: float = 10.0) -> int:
        """The connections counted, once there are ``at_least`` or ``timeout`` passed: a
        client that opens connections in parallel may finish before this server's accept
        loop (polling every 50 ms, slower on a busy machine) has taken the last one from
        the backlog."""
        wait_for(lambda: self.connections >= at_least, timeout)
        return self.connections

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                if self._stop.is_set():
                    conn.close()
                    return
                self.connections += 1
                self.peers.append(peer[0])
                self._open.add(conn)
                t = threading.Thread(target=self._run, args=(conn,), daemon=True)
                self._threads.append(t)
            t.start()

    def _run(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(IO_TIMEOUT)
            self.handle(conn)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(conn)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._acceptor.join(5)
        self._sock.close()
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            threads = list(self._threads)
        for t in threads:
            t.join(5)

    def __enter__(self) -> StandinServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OneShotServer(StandinServer):
    """The reference tracker's connection handling: a single ``recv(1024)``, one answer
    (or none), then close."""

    def respond(self, data: bytes) -> Answer:
        raise NotImplementedError

    def handle(self, conn: socket.socket) -> None:
        data = conn.recv(1024)
        self.record(data)
        answer = self.respond(data)
        if isinstance(answer, _Hang):
            self.wait_stopped(60)
        elif isinstance(answer, Drip):
            for k in range(len(answer.data)):
                conn.sendall(answer.data[k : k + 1])
                if self.wait_stopped(answer.interval):
                    return
        elif answer is not None:
            conn.sendall(answer)


class ReferenceTracker(OneShotServer):
    """The Python 2 reference tracker, as docs/PROTOCOL.md describes it: ``REGISTER`` -> N;
    a pickled position ``0 <= i < N`` -> ``items[i]``; anything else -> 'Bad request'.
    Every answer is a protocol-0 pickle. ``items`` is the stored (shuffled) order."""

    def __init__(
        self, items: Sequence[tuple[int, str]] = REFERENCE_ITEMS, host: str = "127.0.0.1"
    ) -> None:
        self.items = tuple(items)
        super().__init__(host)

    def position_of(self, data: bytes) -> int | None:
        try:
            value = decode_first(data)
        except DecodeError:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return value if 0 <= value < len(self.items) else None

    def respond(self, data: bytes) -> Answer:
        if data == REGISTER:
            return self.answer_register()
        position = self.position_of(data)
        if position is None:
            return BAD_REQUEST_P0
        return self.answer_item(position)

    def answer_register(self) -> Answer:
        return dumps_p0(len(self.items))

    def answer_item(self, position: int) -> Answer:
        return dumps_p0(self.items[position])


def huge_int_pickle(size: int = 2000) -> bytes:
    """A protocol 2 pickle of an integer written as ``size`` bytes (LONG4): over 4,300
    digits, more than Python formats by default."""
    return b"\x80\x02\x8b" + struct.pack("<i", size) + b"\x01" * size


def memo_bomb(count: int, text_size: int = 1000) -> bytes:
    """A protocol 2 pickle of a list holding one ``text_size``-character string
    ``count`` times, each a 2-byte memo GET: a few bytes that stand for
    ``count * text_size`` characters once described."""
    text = b"x" * text_size
    return (
        b"\x80\x02](X" + struct.pack("<I", text_size) + text + b"q\x01"
        + b"h\x01" * count + b"e."
    )  # fmt: skip


#: A memo bomb that fills an answer of 1 MiB (what a client accepts for one answer).
MEMO_BOMB = memo_bomb((1 << 20) // 2 - 600)

#: A small database for the lies: stored order; the message is "a b c d".
LIE_ITEMS: tuple[tuple[int, str], ...] = ((2, "c"), (0, "a"), (3, "d"), (1, "b"))
LIE_MESSAGE = "a b c d"
#: The position whose answer is the lie (it holds SEQNUM 1).
LIE_POSITION = 3

#: name -> (what is lied about: "register" or "item" (the item at LIE_POSITION), the
#: answer sent instead (bytes, CLOSE, HANG, or a callable taking the evil pickle's
#: command), what the client's error line must mention: a case-insensitive regex).
LIES: dict[str, tuple[str, Any, str]] = {
    "duplicate_seqnum": ("item", dumps_p0((0, "a")), r"missing|twice"),
    "conflicting_values": ("item", dumps_p0((0, "z")), r"different|conflict"),
    "seqnum_str": ("item", dumps_p0(("1", "b")), r"seqnum"),
    "seqnum_float": ("item", dumps_p0((1.0, "b")), r"seqnum"),
    "seqnum_out_of_range": ("item", dumps_p0((4, "b")), r"range"),
    "seqnum_negative": ("item", dumps_p0((-1, "b")), r"range|negative"),
    "three_tuple": ("item", dumps_p0((1, "b", "x")), r"pair|tuple"),
    "one_tuple": ("item", dumps_p0((1,)), r"pair|tuple"),
    "value_int": ("item", dumps_p0((1, 5)), r"text|str|value"),
    "value_none": ("item", dumps_p0((1, None)), r"text|str|value"),
    "item_is_int": ("item", dumps_p0(7), r"pair|tuple"),
    "item_garbage": ("item", b"hello, world\n", r"refused|pickle|opcode|malformed"),
    "item_then_garbage": ("item", dumps_p0((1, "b")) + b"\x00junk", r"refused|pickle|opcode"),
    "item_dict": ("item", b"(dp0\nI1\nS'b'\np1\ns.", r"refused|dict"),
    "evil_item": ("item", lambda cmd: evil_pickle(cmd, 0), r"refused|opcode|global"),
    "evil_item_proto4": ("item", lambda cmd: evil_pickle(cmd, 4), r"refused|opcode|global"),
    "bad_request_item": ("item", BAD_REQUEST_P0, r"bad request"),
    "close_item": ("item", CLOSE, r"without answering|closed"),
    "truncated_item": ("item", dumps_p0((1, "b"))[:-3], r"without answering|closed"),
    "hang_item": ("item", HANG, r"timed out"),
    "huge_int_seqnum": (
        "item",
        huge_int_pickle() + b"X\x01\x00\x00\x00b\x86.",
        r"refused.*(large|limit)",
    ),
    "memo_bomb_item": ("item", MEMO_BOMB, r"refused.*(large|limit)"),
    "memo_bomb_datagram": ("item", memo_bomb(24_000, 16_000), r"refused.*(large|limit)"),
    "evil_register": ("register", lambda cmd: evil_pickle(cmd, 0), r"refused|opcode|global"),
    "bad_request_register": ("register", BAD_REQUEST_P0, r"bad request"),
    "negative_n": ("register", dumps_p0(-1), r"negative"),
    "n_str": ("register", dumps_p0("4"), r"integer"),
    "n_float": ("register", dumps_p0(4.0), r"integer"),
    "n_bool": ("register", dumps_p0(True), r"integer"),
    "n_tuple": ("register", dumps_p0((4,)), r"integer"),
    "n_huge": ("register", dumps_p0(10**12), r"limit|max-items"),
    "huge_int_register": ("register", huge_int_pickle() + b".", r"refused.*(large|limit)"),
    "memo_bomb_register": ("register", MEMO_BOMB, r"refused.*(large|limit)"),
    "garbage_register": ("register", b"four\n", r"refused|pickle|opcode|malformed"),
    "close_register": ("register", CLOSE, r"without answering|closed"),
    "hang_register": ("register", HANG, r"timed out"),
    # one byte every 0.3 s of a pickle that would take minutes to end
    "drip_register": ("register", Drip(dumps_p0("x" * 1000)), r"timed out"),
    "drip_item": ("item", Drip(dumps_p0((1, "b" * 1000))), r"timed out"),
}


class LyingTracker(ReferenceTracker):
    """A reference-style tracker serving :data:`LIE_ITEMS` that tells one lie of
    :data:`LIES`. Evil pickles run ``command`` (see :func:`touch_command`)."""

    def __init__(self, lie: str, command: str = "true", host: str = "127.0.0.1") -> None:
        target, answer, _ = LIES[lie]
        self.lie = lie
        self.target = target
        self.lie_answer: Answer = answer(command) if callable(answer) else answer
        super().__init__(LIE_ITEMS, host)

    def answer_register(self) -> Answer:
        return self.lie_answer if self.target == "register" else super().answer_register()

    def answer_item(self, position: int) -> Answer:
        if self.target == "item" and position == LIE_POSITION:
            return self.lie_answer
        return super().answer_item(position)


class LyingUdpTracker:
    """A UDP tracker that tells one lie of :data:`LIES` (those of bytes only): REGISTER
    gets N = 4 (or the lie), every other datagram the lie (or 'Bad request'). A thread on
    a loopback port; a context manager."""

    def __init__(self, lie: str, host: str = "127.0.0.1") -> None:
        target, answer, _ = LIES[lie]
        assert isinstance(answer, bytes), lie
        self.target, self.lie_answer = target, answer
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, 0))
        self._sock.settimeout(0.05)
        self.host, self.port = host, self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self._sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if data.startswith(REGISTER):
                answer = self.lie_answer if self.target == "register" else dumps_p0(4)
            else:
                answer = self.lie_answer if self.target == "item" else BAD_REQUEST_P0
            with contextlib.suppress(OSError):
                self._sock.sendto(answer[:65507], addr)

    def __enter__(self) -> LyingUdpTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


class FlakyReferenceTracker(ReferenceTracker):
    """A reference-style tracker that closes every ``k``-th item connection without an
    answer (counting all item connections, retries included)."""

    def __init__(self, items: Sequence[tuple[int, str]], k: int) -> None:
        self.k = k
        self.item_connections = 0
        self.dropped = 0
        super().__init__(items)

    def answer_item(self, position: int) -> Answer:
        self.item_connections += 1
        if self.item_connections % self.k == 0:
            self.dropped += 1
            return None
        return super().answer_item(position)


class DroppingTracker(StandinServer):
    """A persistent tracker (answers every request on a connection, in order) that
    sends ``k`` answers on each connection, then half of the next one, then closes
    (cleanly: FIN, then it discards what the client still sends). Protocol-0 answers."""

    def __init__(self, items: Sequence[tuple[int, str]], k: int, host: str = "127.0.0.1"):
        self.items = tuple(items)
        self.k = k
        self.answers_per_connection: list[int] = []
        super().__init__(host)

    def _answer(self, request: bytes) -> bytes:
        if request == REGISTER:
            return dumps_p0(len(self.items))
        try:
            value = decode(request)
        except DecodeError:
            return BAD_REQUEST_P0
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(self.items):
            return dumps_p0(self.items[value])
        return BAD_REQUEST_P0

    def handle(self, conn: socket.socket) -> None:
        buf = b""
        sent = 0
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while buf:
                    if buf.startswith(REGISTER):
                        request, buf = REGISTER, buf[len(REGISTER) :]
                    else:
                        end = first_pickle_end(buf)
                        if end is None:
                            if len(buf) > 1024:
                                return
                            break
                        request, buf = buf[:end], buf[end:]
                    answer = self._answer(request)
                    if sent == self.k:
                        conn.sendall(answer[: len(answer) // 2])
                        conn.shutdown(socket.SHUT_WR)
                        deadline = time.monotonic() + 3
                        while time.monotonic() < deadline and conn.recv(65536):
                            pass
                        return
                    conn.sendall(answer)
                    sent += 1
        finally:
            with self._lock:
                self.answers_per_connection.append(sent)


class CountingProxy(StandinServer):
    """Relays each connection to ``upstream`` (both directions, half-closes passed on)
    and counts them."""

    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        super().__init__(host)

    def handle(self, conn: socket.socket) -> None:
        with socket.create_connection(self.upstream, timeout=IO_TIMEOUT) as up:
            back = threading.Thread(target=_pipe, args=(up, conn), daemon=True)
            back.start()
            _pipe(conn, up)
            back.join(IO_TIMEOUT)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


# ----------------------------------------------------------------------- test helpers


def error_line(stderr: str) -> str:
    """The single line of ``stderr``; fails unless there is exactly one."""
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one stderr line, got {lines!r}"
    assert stderr.endswith("\n"), f"stderr line not terminated: {stderr!r}"
    assert "Traceback" not in stderr
    return lines[0]


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True
