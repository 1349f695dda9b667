"""The conformance checker and autograder: named checks against someone else's tracker,
and scenarios that run someone else's client against trackers started here.

``check_tracker`` talks to a tracker as a client would, one request per connection
(what the reference tracker serves), and reports each property of WIRE.md as a named
check. Everything the tracker sends is read by the restricted decoder only, and
everything sent to it is harmless to a tracker that calls ``pickle.loads``: the raw
``REGISTER``, positions pickled by :func:`~cs457p2p.protocol.encode_position` (integer
opcodes only), and garbage that starts with a byte no pickle protocol knows, so a stock
unpickler stops at once.

``check_client`` starts a tracker on a free port of 127.0.0.1 for each scenario, each
with a fresh random secret message and a fresh shuffle, runs the client command (no
shell) with ``{host}``, ``{port}`` and ``{transport}`` replaced, and passes the scenario
when the client's stdout holds the message and it exits within the timeout.

Every network wait and every client run is bounded by a timeout: a check that times out
fails with a detail that says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import random
import shlex
import signal
import socket
import subprocess
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .database import Database
from .decoder import DecodeError, Incomplete, Malformed, RefusedCode, Value, decode_prefix
from .protocol import BAD_REQUEST_TEXT, MAX_ANSWER, MAX_REQUEST, REGISTER, encode_position
from .scenarios import CLIENT_SCENARIOS, Scenario, scenarios_for
from .tracker import MAX_DATAGRAM, Tracker, TrackerConfig, format_address

__all__ = [
    "CLIENT_SCENARIOS",
    "CheckResult",
    "ClientCommandError",
    "Report",
    "Scenario",
    "check_client",
    "check_tracker",
    "run_client_checks",
    "run_tracker_checks",
]

#: Clients that ``concurrent`` runs at once.
CONCURRENT_CLIENTS = 20
#: Positions each concurrent client asks for (all of them when N is at most this).
CONCURRENT_SAMPLE = 256
#: Connections the first and second client use in parallel.
PARALLEL = 8
#: Position requests timed by ``latency``.
LATENCY_SAMPLES = 100
#: A REGISTER answer larger than this is not fetched (a lying tracker).
MAX_ITEMS = 1_000_000
#: Longest wait of an informational check.
INFO_TIMEOUT = 2.0
#: Over UDP, a bad request may go unanswered: wait this long for an answer to it.
UDP_BAD_REQUEST_WAIT = 1.0
#: Bytes of a client's stdout (and stderr) kept; the rest is read and dropped.
STDOUT_CAP = 8 << 20
STDERR_CAP = 64 << 10

#: Requests no tracker should choke on. Each starts with 0xff, which is no opcode of
#: any pickle protocol: ``pickle.loads`` refuses it before doing anything.
GARBAGE: tuple[tuple[str, bytes], ...] = (
    ("non-pickle bytes", b"\xff\xfe this is not a pickle\r\n"),
    ("1,500 bytes of noise", b"\xff" * 1500),
    ("an empty request", b""),
)


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CheckResult:
    """One line of a report. ``passed`` of an informational check says whether the
    tracker has the feature (or the measurement was made); it never fails a report."""

    name: str
    required: bool
    passed: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def result(self) -> str:
        if not self.required:
            return "INFO"
        return "PASS" if self.passed else "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "required": self.required,
            "passed": self.passed,
            "result": self.result,
            "detail": self.detail,
            "data": self.data,
        }


@dataclass(frozen=True)
class Report:
    """The checks of one run, in order, and what they were run against."""

    kind: str  # "tracker" or "client"
    target: str  # HOST:PORT, or the client's command line
    transport: str
    checks: tuple[CheckResult, ...]
    #: the tracker's assembled message (check tracker), when it could be assembled
    message: str | None = None

    @property
    def required(self) -> list[CheckResult]:
        return [c for c in self.checks if c.required]

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.required if not c.passed]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary(self) -> str:
        required = self.required
        passed = sum(c.passed for c in required)
        line = f"{self.kind} {self.target}: {passed}/{len(required)} required checks passed"
        if self.failed:
            line += f" (failed: {', '.join(self.failed)})"
        return line

    def table(self) -> str:
        """The checks as an aligned table, then the summary line."""
        rows = [("check", "result", "detail")]
        rows += [(c.name, c.result, _one_line(c.detail)) for c in self.checks]
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        lines = [f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in rows]
        return "\n".join([*lines, self.summary()])

    def to_json(self) -> dict[str, Any]:
        required = self.required
        return {
            "kind": self.kind,
            "target": self.target,
            "transport": self.transport,
            "ok": self.ok,
            "checks": [c.to_json() for c in self.checks],
            "summary": {
                "required": len(required),
                "passed": sum(c.passed for c in required),
                "failed": self.failed,
                "line": self.summary(),
            },
            "message": self.message,
        }

    def json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False)


def _one_line(text: str) -> str:
    return " ".join(text.split("\n"))


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short_text(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plural(k: int, word: str) -> str:
    return f"{k} {word}" if k == 1 else f"{k} {word}s"


# ------------------------------------------------------------------------------ replies

ANSWER = "answer"  # the wanted number of answers, decoded
CLOSED = "closed"  # the tracker closed (or reset) before that
TIMEOUT = "timeout"  # nothing more within the time allowed
UNREACHABLE = "unreachable"  # no connection (refused, unresolvable...)
UNDECODABLE = "undecodable"  # bytes the restricted decoder refuses


@dataclass
class Reply:
    """What one exchange got: ``values`` decoded in order, the first bytes received, and
    for anything but ``ANSWER`` a detail that says what happened."""

    kind: str
    values: list[Value] = field(default_factory=list)
    raw: bytes = b""
    detail: str = ""
    seconds: float = 0.0

    def describe(self) -> str:
        if self.kind == ANSWER:
            return _short(self.values[0])
        return self.detail


def _decode_problem(raw: bytes, error: DecodeError) -> str:
    shown = _short(raw[:40] + (b"..." if len(raw) > 40 else b""))
    if isinstance(error, Malformed):
        return f"{shown}, not a pickle ({error})"
    if isinstance(error, RefusedCode):
        return (
            f"{shown}, a pickle that calls code ({error}): pickle.loads would run it in the client"
        )
    return f"{shown}, a pickle the restricted decoder refuses ({error.kind}: {error})"


class _Stream:
    """Decodes the pickles at the start of a byte stream, as they arrive."""

    def __init__(self, max_size: int) -> None:
        self.buf = b""
        self.pos = 0
        self.needed = 0
        self.max_size = max_size

    def feed(self, data: bytes, want: int) -> list[Value]:
        """Add bytes; return the values completed (at most ``want``). Raises
        :class:`DecodeError`. Bytes after the last wanted value are ignored, as
        ``pickle.loads`` ignores what follows STOP."""
        self.buf += data
        out: list[Value] = []
        while len(out) < want and self.pos < len(self.buf):
            if len(self.buf) - self.pos < self.needed:
                break
            try:
                value, end = decode_prefix(self.buf, self.pos, max_size=self.max_size)
            except Incomplete as e:
                self.needed = e.needed
                break
            self.needed = 0
            out.append(value)
            self.pos = end
        return out


class _Link:
    """How the checks reach the tracker: one request per connection (TCP) or per
    socket (UDP)."""

    transport = "tcp"

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    async def exchange(self, payload: bytes, want: int = 1, timeout: float | None = None) -> Reply:
        raise NotImplementedError


class _TcpLink(_Link):
    async def exchange(self, payload: bytes, want: int = 1, timeout: float | None = None) -> Reply:
        """Connect, send ``payload`` (an empty payload: half-close at once), and read
        until ``want`` answers are decoded, the tracker closes, or time runs out."""
        loop = asyncio.get_running_loop()
        limit = self.timeout if timeout is None else timeout
        start = loop.time()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), limit
            )
        except asyncio.TimeoutError:
            return Reply(TIMEOUT, detail=f"no connection within {limit:g} s")
        except OSError as e:
            return Reply(UNREACHABLE, detail=f"cannot connect: {_os_error(e)}")
        stream = _Stream(MAX_ANSWER)
        values: list[Value] = []
        raw = b""
        try:
            writer.write(payload)
            if not payload:
                writer.write_eof()
            while len(values) < want:
                left = start + limit - loop.time()
                if left <= 0:
                    raise asyncio.TimeoutError
                try:
                    data = await asyncio.wait_for(reader.read(1 << 16), left)
                except asyncio.TimeoutError:
                    raise  # (an OSError on Python 3.11+: handled below)
                except OSError as e:  # reset
                    return Reply(
                        CLOSED, values, raw, f"connection {_os_error(e)}" + _after(values, raw)
                    )
                if not data:
                    return Reply(CLOSED, values, raw, _closed_detail(values, raw))
                if len(raw) < 256:
                    raw += data[: 256 - len(raw)]
                try:
                    values += stream.feed(data, want - len(values))
                except DecodeError as e:
                    return Reply(UNDECODABLE, values, raw, _decode_problem(raw, e))
        except asyncio.TimeoutError:
            got = f" (got {_short(raw[:40])})" if raw and not values else ""
            return Reply(TIMEOUT, values, raw, f"no answer within {limit:g} s{got}")
        except OSError as e:
            return Reply(CLOSED, values, raw, f"connection {_os_error(e)}")
        finally:
            writer.close()
        return Reply(ANSWER, values, raw, seconds=loop.time() - start)


def _os_error(e: OSError) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, ConnectionResetError):
        return "reset"
    return str(e.strerror or e).lower()


def _after(values: list[Value], raw: bytes) -> str:
    if values:
        return f" after {_plural(len(values), 'answer')}"
    return f" after {_short(raw[:40])}" if raw else " without an answer"


def _closed_detail(values: list[Value], raw: bytes) -> str:
    if values:
        return f"closed after {_plural(len(values), 'answer')}"
    if raw:
        return f"closed after {_short(raw[:40])}, before the pickle ended"
    return "closed without answering"


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.queue.put_nowait(exc)


class _UdpLink(_Link):
    transport = "udp"

    def __init__(self, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout)
        self._addr: tuple[int, tuple[Any, ...]] | None = None

    async def _socket(self, limit: float) -> socket.socket:
        """A fresh non-blocking UDP socket connected to the tracker. (The datagrams are
        sent on it directly: asyncio's ``sendto`` drops an empty datagram.)"""
        if self._addr is None:
            loop = asyncio.get_running_loop()
            infos = await asyncio.wait_for(
                loop.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM), limit
            )
            self._addr = (infos[0][0], infos[0][4])
        family, addr = self._addr
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(addr)
        except OSError:
            sock.close()
            raise
        return sock

    async def exchange(self, payload: bytes, want: int = 1, timeout: float | None = None) -> Reply:
        """Send ``payload`` as one datagram from a fresh socket (so no late reply to
        another request can reach it), again while nothing comes back, and collect
        datagrams until ``want`` answers are decoded or time runs out."""
        loop = asyncio.get_running_loop()
        limit = self.timeout if timeout is None else timeout
        start = loop.time()
        try:
            sock = await self._socket(limit)
            transport, inbox = await loop.create_datagram_endpoint(_Inbox, sock=sock)
        except asyncio.TimeoutError:
            return Reply(TIMEOUT, detail=f"cannot resolve {self.host!r} within {limit:g} s")
        except OSError as e:
            return Reply(UNREACHABLE, detail=f"cannot open a UDP socket: {_os_error(e)}")

        def send() -> None:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                sock.send(payload)

        values: list[Value] = []
        raw = b""
        retry = 0.2
        next_send = start + retry
        try:
            send()
            while len(values) < want:
                now = loop.time()
                if now >= start + limit:
                    got = f" (got {_plural(len(values), 'answer')})" if values else ""
                    return Reply(
                        TIMEOUT, values, raw, f"no answer over UDP within {limit:g} s{got}"
                    )
                until = start + limit if values else min(next_send, start + limit)
                try:
                    item = await asyncio.wait_for(inbox.queue.get(), max(until - now, 0.0))
                except asyncio.TimeoutError:
                    if not values and loop.time() >= next_send:
                        send()
                        retry = min(retry * 2, 1.0)
                        next_send = loop.time() + retry
                    continue
                if isinstance(item, ConnectionRefusedError):
                    return Reply(
                        UNREACHABLE, values, raw, "port unreachable: nothing listens on UDP"
                    )
                if isinstance(item, Exception):
                    continue
                if len(raw) < 256:
                    raw += item[: 256 - len(raw)]
                stream = _Stream(MAX_DATAGRAM)
                try:
                    got_now = stream.feed(item, want - len(values))
                except DecodeError as e:
                    return Reply(UNDECODABLE, values, raw, _decode_problem(item, e))
                if not got_now:
                    return Reply(
                        UNDECODABLE,
                        values,
                        raw,
                        f"{_short(item[:40])}: the datagram ends before the pickle does",
                    )
                values += got_now
        except ConnectionRefusedError:
            return Reply(UNREACHABLE, values, raw, "port unreachable: nothing listens on UDP")
        finally:
            transport.close()
        return Reply(ANSWER, values, raw, seconds=loop.time() - start)


# ------------------------------------------------------------------------ tracker checks

Item = tuple[int, str]


def _as_item(value: Value) -> Item | str:
    """A ``(SEQNUM, VALUE)`` pair with an int SEQNUM and a text VALUE, or what is
    wrong with it. (SEQNUM ranges are the permutation check's business.)"""
    if value == BAD_REQUEST_TEXT:
        return "'Bad request'"
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        return f"{_short(value)}, not a (SEQNUM, VALUE) pair"
    seq, text = value
    if isinstance(seq, bool) or not isinstance(seq, int):
        return f"{_short(value)}: SEQNUM is not an int"
    if isinstance(text, bytes):  # a Python 3 bytes VALUE reads like a Python 2 string
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        return f"{_short(value)}: VALUE is not text"
    return seq, text


def _protocol_of(raw: bytes) -> int:
    """The pickle protocol of an answer, from its first bytes: PROTO says 2 and newer;
    protocol 0 is text opcodes only, protocol 1 has binary ones."""
    if len(raw) >= 2 and raw[0] == 0x80:
        return raw[1]
    if all(b == 0x0A or 0x20 <= b < 0x7F or b >= 0x80 for b in raw):
        return 0
    return 1


class _Observer:
    """What the answers looked like: their pickle protocols, and the first answer that
    was not a pickle the restricted decoder reads."""

    def __init__(self) -> None:
        self.protocols: Counter[int] = Counter()
        self.answers = 0
        self.not_pickled: str | None = None

    def note(self, what: str, reply: Reply) -> None:
        if reply.kind == ANSWER:
            self.answers += 1
            self.protocols[_protocol_of(reply.raw)] += 1
        elif self.not_pickled is None and (
            reply.kind == UNDECODABLE or (reply.kind == CLOSED and reply.raw and not reply.values)
        ):
            self.not_pickled = _got(what, reply)


@dataclass
class _Client:
    """One client's view of the database: N, and the item at each position asked."""

    register: Reply | None = None
    n: int | None = None
    register_problem: str | None = None
    items: dict[int, Item] = field(default_factory=dict)
    problem: str | None = None  # the first position that did not answer a pair


def _got(what: str, reply: Reply) -> str:
    """What a request got, as a phrase: ``position 3 answered 'Bad request'``,
    ``REGISTER: closed without answering``."""
    if reply.kind == ANSWER:
        return f"{what} answered {_short(reply.values[0])}"
    if reply.kind == UNDECODABLE:
        return f"{what} answered {reply.detail}"
    return f"{what}: {reply.detail}"


def _count_of(reply: Reply) -> int | str:
    """N from a REGISTER reply, or what is wrong with it."""
    if reply.kind != ANSWER:
        return _got("REGISTER", reply)
    value = reply.values[0]
    if value == BAD_REQUEST_TEXT:
        return "REGISTER answered 'Bad request'"
    if isinstance(value, bool) or not isinstance(value, int):
        return f"REGISTER answered {_short(value)}, not an int"
    if value < 0:
        return f"REGISTER answered N = {value}, a negative number"
    if value > MAX_ITEMS:
        return f"REGISTER answered N = {value:,}, more than this checker's limit of {MAX_ITEMS:,}"
    return value


def _item_of(what: str, reply: Reply) -> Item | str:
    """The pair a position request got, or what is wrong with it."""
    if reply.kind != ANSWER:
        return _got(what, reply)
    item = _as_item(reply.values[0])
    return f"{what} answered {item}" if isinstance(item, str) else item


async def _register(link: _Link, client: _Client, observer: _Observer | None = None) -> None:
    reply = await link.exchange(REGISTER)
    client.register = reply
    if observer is not None:
        observer.note("REGISTER", reply)
    count = _count_of(reply)
    if isinstance(count, str):
        client.register_problem = count
    else:
        client.n = count


async def _fetch(
    link: _Link,
    client: _Client,
    positions: Sequence[int],
    parallel: int,
    observer: _Observer | None = None,
) -> None:
    """Ask for each position (one request per connection, ``parallel`` at a time);
    stop at the first position that does not answer a pair."""
    queue = deque(positions)
    problems: list[tuple[int, str]] = []

    async def worker() -> None:
        while queue and not problems:
            p = queue.popleft()
            reply = await link.exchange(encode_position(p))
            if observer is not None:
                observer.note(f"position {p}", reply)
            item = _item_of(f"position {p}", reply)
            if isinstance(item, str):
                problems.append((p, item))
                return
            client.items[p] = item

    await asyncio.gather(*(worker() for _ in range(min(parallel, len(queue)))))
    if problems:
        client.problem = min(problems)[1]


def _sample(n: int, k: int) -> list[int]:
    """All of ``0..n-1`` when ``n <= k``, else ``k`` positions spread evenly over them
    (the first and the last included)."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _permutation_problem(items: dict[int, Item], n: int) -> str | None:
    at: dict[int, list[int]] = {}
    for p in range(n):
        seq = items[p][0]
        if not 0 <= seq < n:
            return f"position {p} has SEQNUM {seq}, out of range 0..{n - 1}"
        at.setdefault(seq, []).append(p)
    twice = [(s, ps) for s, ps in sorted(at.items()) if len(ps) > 1]
    if not twice:
        return None
    missing = [s for s in range(n) if s not in at]
    s, ps = twice[0]
    where = " and ".join(map(str, ps)) if len(ps) == 2 else ", ".join(map(str, ps[:4]))
    where += ", ..." if len(ps) > 4 else ""
    text = f"SEQNUM {s} is served at positions {where}"
    if len(twice) > 1:
        text += f" (and {_plural(len(twice) - 1, 'more SEQNUM')} twice)"
    shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
    return f"{text}; missing: {shown}"


def _assemble(items: dict[int, Item], n: int) -> str:
    ordered = [""] * n
    for seq, text in items.values():
        ordered[seq] = text
    return " ".join(ordered)


def _not_run(name: str, why: str, required: bool = True) -> CheckResult:
    return CheckResult(name, required, False, f"not run: {why}")


async def _still_serves(link: _Link, first: _Client) -> str | None:
    """None when REGISTER and position 0 still answer as they did for the first
    client; else what went wrong."""
    reply = await link.exchange(REGISTER)
    count = _count_of(reply)
    if isinstance(count, str):
        return f"then {count}"
    if count != first.n:
        return f"then REGISTER answered N = {count}, not {first.n}"
    if 0 in first.items:
        item = _item_of("position 0", await link.exchange(encode_position(0)))
        if isinstance(item, str):
            return f"then {item}"
        if item != first.items[0]:
            return f"then position 0 answered {_short(item)}, not {_short(first.items[0])}"
    return None


async def _bad_requests(
    link: _Link, first: _Client, name: str, requests: Sequence[tuple[str, bytes]]
) -> CheckResult:
    """Each request must get an answer or a close (over UDP: an answer or nothing), and
    the tracker must answer REGISTER and position 0 as before, afterwards."""
    udp = link.transport == "udp"
    notes: list[str] = []
    for what, payload in requests:
        reply = await link.exchange(
            payload, timeout=min(link.timeout, UDP_BAD_REQUEST_WAIT) if udp else None
        )
        if reply.kind == ANSWER or reply.kind == UNDECODABLE:
            notes.append(f"{what}: {reply.describe()}")
        elif reply.kind == CLOSED:
            notes.append(f"{what}: {reply.detail}")
        elif reply.kind == TIMEOUT and udp:
            notes.append(f"{what}: no answer (ignored)")
        elif reply.kind == TIMEOUT:
            return CheckResult(
                name, True, False, f"{what}: no answer and no close within {link.timeout:g} s"
            )
        else:
            why = f"{what}: {reply.detail}"
            return CheckResult(name, True, False, f"{why} (the tracker stopped serving)")
        problem = await _still_serves(link, first)
        if problem is not None:
            notes[-1] += f"; {problem} (the tracker no longer serves)"
            return CheckResult(name, True, False, "; ".join(notes))
    return CheckResult(name, True, True, "; ".join(notes) + "; still serves")


async def _concurrent(link: _Link, first: _Client) -> CheckResult:
    assert first.n is not None
    n = first.n
    positions = [p for p in _sample(n, CONCURRENT_SAMPLE) if p in first.items]

    async def session(k: int) -> str | None:
        client = _Client()
        await _register(link, client)
        if client.n is None:
            return f"client {k}: {client.register_problem}"
        if client.n != n:
            return f"client {k}: REGISTER answered N = {client.n}, not {n}"
        await _fetch(link, client, positions, parallel=1)
        if client.problem is not None:
            return f"client {k}: {client.problem}"
        for p in positions:
            if client.items[p] != first.items[p]:
                return (
                    f"client {k}: position {p} answered {_short(client.items[p])},"
                    f" not {_short(first.items[p])}"
                )
        return None

    problems = await asyncio.gather(*(session(k) for k in range(1, CONCURRENT_CLIENTS + 1)))
    failed = [p for p in problems if p is not None]
    what = f"REGISTER + {_plural(len(positions), 'position')} each"
    if len(positions) < n:
        what += f", a sample of the {n:,}"
    if failed:
        more = f" ({len(failed)} of {CONCURRENT_CLIENTS} clients failed)" if len(failed) > 1 else ""
        return CheckResult("concurrent", True, False, failed[0] + more)
    return CheckResult(
        "concurrent",
        True,
        True,
        f"{CONCURRENT_CLIENTS} clients at once ({what}) all got the same database",
        {"clients": CONCURRENT_CLIENTS, "positions": len(positions)},
    )


async def _ascii(link: _Link, first: _Client) -> CheckResult:
    if 0 not in first.items:
        return _not_run("ascii-positions", "no item at position 0", required=False)
    reply = await link.exchange(b"0", timeout=min(link.timeout, INFO_TIMEOUT))
    if reply.kind == ANSWER and _as_item(reply.values[0]) == first.items[0]:
        return CheckResult("ascii-positions", False, True, "yes: b'0' is answered as position 0")
    if reply.kind == ANSWER and reply.values[0] == BAD_REQUEST_TEXT:
        detail = "no: b'0' is answered 'Bad request' (as the reference)"
    else:
        detail = f"no: {_got(repr(b'0'), reply)}"
    return CheckResult("ascii-positions", False, False, detail)


async def _pipelining(link: _Link, first: _Client) -> CheckResult:
    if first.n is not None and first.n >= 2:
        what, payload = "positions 0 and 1", encode_position(0) + encode_position(1)
    else:
        what, payload = "two REGISTERs", REGISTER + REGISTER
    how = "in one datagram" if link.transport == "udp" else "back to back on one connection"
    reply = await link.exchange(payload, want=2, timeout=min(link.timeout, INFO_TIMEOUT))
    if reply.kind == ANSWER:
        return CheckResult("pipelining", False, True, f"yes: {what} sent {how} both answered")
    if len(reply.values) == 1 and reply.kind == CLOSED:
        detail = f"no: {what} sent {how}: the first answered, then closed (reference style)"
    elif len(reply.values) == 1:
        detail = f"no: {what} sent {how}: only the first answered"
    else:
        detail = f"no: {what} sent {how}: {reply.describe()}"
    return CheckResult("pipelining", False, False, detail)


async def _other_transport(link: _Link) -> CheckResult:
    other: _Link
    if link.transport == "tcp":
        other = _UdpLink(link.host, link.port, min(link.timeout, INFO_TIMEOUT))
    else:
        other = _TcpLink(link.host, link.port, min(link.timeout, INFO_TIMEOUT))
    name = other.transport
    reply = await other.exchange(REGISTER)
    count = _count_of(reply)
    if isinstance(count, int):
        return CheckResult(
            name, False, True, f"yes: REGISTER over {name.upper()} gives N = {count}"
        )
    return CheckResult(name, False, False, f"no: {count}")


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, -(-len(ordered) * q // 100) - 1))
    return ordered[int(k)]


async def _latency(link: _Link, first: _Client) -> CheckResult:
    n = first.n or 0
    positions = sorted(first.items)
    what = "position requests" if positions else "REGISTER requests"
    samples: list[float] = []
    failures = 0
    for k in range(LATENCY_SAMPLES):
        payload = encode_position(positions[k % len(positions)]) if positions else REGISTER
        reply = await link.exchange(payload, timeout=min(link.timeout, INFO_TIMEOUT))
        if reply.kind == ANSWER:
            samples.append(reply.seconds * 1000)
        else:
            failures += 1
            if failures >= 3 and not samples:
                break
    if not samples:
        return CheckResult("latency", False, False, f"not measured: no answer to {what}")
    p50, p99 = _percentile(samples, 50), _percentile(samples, 99)
    each = "its own UDP socket" if link.transport == "udp" else "its own connection"
    detail = f"p50 {p50:.2f} ms, p99 {p99:.2f} ms ({len(samples)} {what}, each on {each})"
    if failures:
        detail += f"; {failures} unanswered"
    data = {"p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "samples": len(samples), "n": n}
    return CheckResult("latency", False, True, detail, data)


def _protocol_check(observer: _Observer) -> CheckResult:
    protocols = sorted(observer.protocols)
    if not protocols:
        return CheckResult("pickle-protocol", False, False, "not seen: no answer was a pickle")
    if protocols == [0]:
        detail = "protocol 0 (text, as the reference sends)"
    elif len(protocols) == 1:
        p = protocols[0]
        who = "Python 2 and 3 read it" if p <= 2 else "Python 3 only: a Python 2 client cannot"
        detail = f"protocol {p}, newer than the reference's 0 ({who})"
    else:
        detail = "mixed: protocols " + ", ".join(map(str, protocols))
    return CheckResult("pickle-protocol", False, True, detail, {"protocols": protocols})


async def run_tracker_checks(
    host: str, port: int, *, transport: str = "tcp", timeout: float = 5.0
) -> Report:
    """Run every tracker check against ``host:port`` (see the module docstring)."""
    if transport not in ("tcp", "udp"):
        raise ValueError("transport must be tcp or udp")
    link: _Link = (_UdpLink if transport == "udp" else _TcpLink)(host, port, timeout)
    checks: list[CheckResult] = []
    observer = _Observer()
    first = _Client()
    await _register(link, first, observer)
    n = first.n

    # -- register
    if n is None:
        assert first.register_problem is not None
        checks.append(CheckResult("register", True, False, first.register_problem))
    else:
        checks.append(CheckResult("register", True, True, f"N = {n}", {"n": n}))

    # -- items
    if n is not None:
        await _fetch(link, first, range(n), PARALLEL, observer)
        if first.problem is not None:
            checks.append(CheckResult("items", True, False, first.problem))
        elif n == 0:
            checks.append(CheckResult("items", True, True, "N = 0: no positions to ask"))
        else:
            checks.append(
                CheckResult(
                    "items", True, True, f"all {n} positions answered a (SEQNUM, VALUE) pair"
                )
            )
    else:
        checks.append(_not_run("items", "REGISTER gave no N"))

    # -- pickled
    if observer.not_pickled is not None:
        checks.append(CheckResult("pickled", True, False, observer.not_pickled))
    elif not observer.answers:
        checks.append(_not_run("pickled", "no answer to look at"))
    else:
        checks.append(
            CheckResult(
                "pickled",
                True,
                True,
                f"{_plural(observer.answers, 'answer')}, all pickles the restricted decoder reads",
            )
        )

    # -- permutation and message
    message: str | None = None
    complete = n is not None and first.problem is None
    if not complete:
        checks.append(_not_run("permutation", "not every position answered a pair"))
        checks.append(_not_run("message", "not every position answered a pair"))
    else:
        assert n is not None
        problem = _permutation_problem(first.items, n)
        if problem is not None:
            checks.append(CheckResult("permutation", True, False, problem))
            checks.append(
                CheckResult("message", True, False, "not assembled: the SEQNUMs are wrong")
            )
        else:
            message = _assemble(first.items, n)
            what = "N = 0: nothing to check" if n == 0 else f"the SEQNUMs are exactly 0..{n - 1}"
            checks.append(CheckResult("permutation", True, True, what))
            checks.append(
                CheckResult(
                    "message",
                    True,
                    True,
                    f'"{_short_text(message)}"' + (f" ({n} items)" if len(message) > 100 else ""),
                    {"message": message},
                )
            )

    # The rest runs in an order of its own (the report keeps the order above): first
    # what any working tracker survives, then the requests a fragile tracker may die
    # of, so that such a death costs only the check that caused it.
    later: dict[str, CheckResult] = {}
    if n is None:
        for name in ("second-client", "concurrent", "out-of-range", "garbage"):
            later[name] = _not_run(name, "REGISTER gave no N")
        for name in ("ascii-positions", "pipelining"):
            later[name] = _not_run(name, "REGISTER gave no N", required=False)
    else:
        later["second-client"] = await _second_client(link, first)
        later["concurrent"] = await _concurrent(link, first)
    latency = await _latency(link, first)
    other = await _other_transport(link)
    if n is not None:
        out_of_range = [
            (f"position {n}", encode_position(n)),
            ("position -1", encode_position(-1)),
        ]
        risky: tuple[tuple[str, Callable[[], Awaitable[CheckResult]]], ...] = (
            ("out-of-range", lambda: _bad_requests(link, first, "out-of-range", out_of_range)),
            ("garbage", lambda: _bad_requests(link, first, "garbage", GARBAGE)),
            ("pipelining", lambda: _pipelining(link, first)),
            ("ascii-positions", lambda: _ascii(link, first)),
        )
        dead_after: str | None = None
        for name, run in risky:
            if dead_after is None:
                later[name] = await run()
                if not later[name].passed and await _still_serves(link, first) is not None:
                    dead_after = name
            else:
                why = f"the tracker stopped serving during {dead_after}"
                later[name] = _not_run(name, why, required=name in ("out-of-range", "garbage"))
    for name in ("second-client", "out-of-range", "garbage", "concurrent"):
        checks.append(later[name])
    checks += [later["ascii-positions"], later["pipelining"], other, latency]
    checks.append(_protocol_check(observer))
    return Report("tracker", link.address, transport, tuple(checks), message)


async def _second_client(link: _Link, first: _Client) -> CheckResult:
    """Another client, after the first: the same N, the same item at every position."""
    assert first.n is not None
    again = _Client()
    await _register(link, again)
    hint = ""
    if again.register is not None and again.register.kind == UNREACHABLE:
        hint = " (the tracker stopped serving after the first client)"
    if again.n is None:
        return CheckResult("second-client", True, False, f"{again.register_problem}{hint}")
    if again.n != first.n:
        return CheckResult(
            "second-client", True, False, f"REGISTER answered N = {again.n}, then {first.n}"
        )
    positions = sorted(first.items)
    await _fetch(link, again, positions, PARALLEL)
    if again.problem is not None:
        return CheckResult("second-client", True, False, again.problem)
    for p in positions:
        if again.items[p] != first.items[p]:
            return CheckResult(
                "second-client",
                True,
                False,
                f"position {p} answered {_short(first.items[p])} to the first client,"
                f" {_short(again.items[p])} to the second",
            )
    if not positions:
        detail = f"the same N = {first.n} again"
    else:
        detail = f"the same N and the same item at all {len(positions)} positions"
        if len(positions) < first.n:
            detail = (
                f"the same N and the same item at the {len(positions)} positions"
                f" (of {first.n}) the first client got"
            )
    return CheckResult("second-client", True, True, detail)


def check_tracker(host: str, port: int, *, transport: str = "tcp", timeout: float = 5.0) -> Report:
    """:func:`run_tracker_checks` in a fresh event loop."""
    return asyncio.run(run_tracker_checks(host, port, transport=transport, timeout=timeout))


# ------------------------------------------------------------------------- client checks


class ClientCommandError(Exception):
    """The client command cannot be run at all (not found, not executable, no
    ``{port}``): a usage error, not a failing client."""


# fmt: off
_ONSETS = (
    "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
    "br", "ch", "dr", "fl", "gr", "kl", "pl", "sh", "st", "th", "tr",
)
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ee", "oa", "oo", "ou")
# fmt: on
_CODAS = ["", "", "", "n", "r", "s", "t", "m", "k", "ng", "sh"]


def secret_words(rng: random.Random, count: int) -> list[str]:
    """``count`` random made-up words (lowercase ASCII, 1 to 3 syllables)."""
    return [
        "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(rng.randint(1, 3)))
        + rng.choice(_CODAS)
        for _ in range(count)
    ]


# -- a reference-style tracker: what WIRE.md says the course's reference does


def _py2_repr(raw: bytes) -> bytes:
    """``repr()`` of a Python 2 byte string, as Python 2's pickle writes it after ``S``."""
    quote = 0x22 if (b"'" in raw and b'"' not in raw) else 0x27
    out = bytearray([quote])
    for c in raw:
        if c in (quote, 0x5C):
            out += b"\\" + bytes([c])
        elif c == 0x09:
            out += b"\\t"
        elif c == 0x0A:
            out += b"\\n"
        elif c == 0x0D:
            out += b"\\r"
        elif c < 0x20 or c >= 0x7F:
            out += b"\\x%02x" % c
        else:
            out.append(c)
    out.append(quote)
    return bytes(out)


def protocol0_count(n: int) -> bytes:
    """Python 2's ``pickle.dumps(n)``: ``b"I16\\n."``."""
    return b"I%d\n." % n


def protocol0_item(seq: int, value: str) -> bytes:
    """Python 2's ``pickle.dumps((seq, value))``: ``b"(I12\\nS'of'\\np0\\ntp1\\n."``."""
    return b"(I%d\nS%s\np0\ntp1\n." % (seq, _py2_repr(value.encode("utf-8")))


PROTOCOL0_BAD_REQUEST = b"S'Bad request'\np0\n."


class ReferenceStyleTracker:
    """One request per connection, as the course's reference tracker: a single read
    of at most 1,024 bytes, decoded by the restricted decoder, one protocol-0 answer,
    then close. TCP only."""

    def __init__(self, db: Database, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.db = db
        self.host = host
        self.timeout = timeout
        self.port = 0
        self._server: asyncio.Server | None = None
        self._answers = [protocol0_item(s, v) for s, v in db.items]
        self._tasks: set[asyncio.Task[None]] = set()

    def answer(self, data: bytes) -> bytes:
        if data == REGISTER:
            return protocol0_count(len(self.db))
        try:
            value, _ = decode_prefix(data, 0, max_size=MAX_REQUEST)
        except (DecodeError, Incomplete):
            return PROTOCOL0_BAD_REQUEST
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(self.db):
            return self._answers[value]
        return PROTOCOL0_BAD_REQUEST

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            data = await asyncio.wait_for(reader.read(MAX_REQUEST), self.timeout)
            writer.write(self.answer(data))
            await asyncio.wait_for(writer.drain(), self.timeout)
        except (asyncio.TimeoutError, OSError):
            pass
        finally:
            writer.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, 0, backlog=1024)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)


# -- running the client


class _Capture:
    """Reads a pipe to its end, keeping the first ``cap`` bytes (what was read so far
    survives a cancellation)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.truncated = False

    async def run(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while True:
            chunk = await stream.read(1 << 16)
            if not chunk:
                return
            room = self.cap - len(self.data)
            if room < len(chunk):
                self.truncated = True
            if room > 0:
                self.data += chunk[:room]


@dataclass
class _Run:
    exit: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _run_command(argv: Sequence[str], timeout: float) -> _Run:
    """Run ``argv`` (no shell) in a process group of its own; kill the whole group when
    it has not exited within ``timeout`` seconds (and anything it left behind)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as e:
        raise ClientCommandError(f"cannot run {argv[0]!r}: {e.strerror or e}") from None
    out, err = _Capture(STDOUT_CAP), _Capture(STDERR_CAP)
    readers = [
        asyncio.ensure_future(out.run(proc.stdout)),
        asyncio.ensure_future(err.run(proc.stderr)),
    ]
    timed_out = False
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except asyncio.TimeoutError:
        timed_out = True
    finally:
        _kill_group(proc.pid)
        if proc.returncode is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 5.0)
        seconds = loop.time() - start
        # the pipes end when the last process holding them is gone
        _, pending = await asyncio.wait(readers, timeout=1.0)
        for t in pending:
            t.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return _Run(
        None if timed_out else proc.returncode,
        out.data.decode("utf-8", "replace"),
        err.data.decode("utf-8", "replace"),
        seconds,
        timed_out,
    )


def substitute(command: Sequence[str], host: str, port: int, transport: str) -> list[str]:
    """``{host}``, ``{port}`` and ``{transport}`` replaced in every argument."""
    out = []
    for arg in command:
        arg = arg.replace("{host}", host).replace("{port}", str(port))
        out.append(arg.replace("{transport}", transport))
    return out


def _diagnose(stdout: str, db: Database, message: str) -> str:
    """Why ``stdout`` does not hold ``message``: the likeliest mistake."""
    if not stdout.strip():
        return "nothing on stdout"
    stored = " ".join(v for _, v in db.items)
    if stored in stdout:
        return "printed the values in position order, not in SEQNUM order"
    if message in " ".join(stdout.split()):
        return "printed the values, but not on one line joined by single spaces"
    words = sorted(message.split())
    for line in stdout.splitlines():
        if sorted(line.split()) == words:
            return "printed every value, but not in SEQNUM order"
    first = next(line for line in stdout.splitlines() if line.strip())
    return f"stdout does not hold the message (it starts {_short(first, 70)})"


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return _short_text(lines[-1].strip(), 120) if lines else ""


async def _run_scenario(
    scenario: Scenario,
    command: Sequence[str],
    transport: str,
    timeout: float,
    rng: random.Random,
) -> CheckResult:
    message = " ".join(secret_words(rng, scenario.items))
    db = Database.from_message(message, shuffle_seed=rng.randrange(1 << 32))
    fault_seed = rng.randrange(1 << 32)
    server: Tracker | ReferenceStyleTracker
    if scenario.reference_style:
        server = ReferenceStyleTracker(db, timeout=timeout)
        await server.start()
        port = server.port
    else:
        faults = dataclasses.replace(scenario.faults, seed=fault_seed)
        config = TrackerConfig(host="127.0.0.1", port=0, faults=faults, drain_timeout=1.0)
        server = Tracker(db, config)
        await server.start()
        port = server.port
    try:
        run = await _run_command(substitute(command, "127.0.0.1", port, transport), timeout)
    finally:
        await server.close()
    found = message in run.stdout
    data: dict[str, Any] = {
        "items": scenario.items,
        "exit": run.exit,
        "seconds": round(run.seconds, 3),
        "timed_out": run.timed_out,
    }
    if scenario.faults.active:
        data["fault_seed"] = fault_seed
    if scenario.items == 0:
        # The empty message is in any stdout: here the client must not crash.
        passed = not run.timed_out and run.exit == 0
    else:
        passed = not run.timed_out and found
    stderr = _last_line(run.stderr)
    if passed:
        what = "exited 0 for N = 0" if scenario.items == 0 else "printed the message"
        what += f" ({scenario.items:,} items)" if scenario.items else ""
        detail = f"{what} in {run.seconds:.2f} s"
        if run.exit:
            detail += f" (exit {run.exit})"
        return CheckResult(scenario.name, True, True, detail, data)
    if run.timed_out:
        detail = f"did not exit within {timeout:g} s (killed)"
        if found and scenario.items:
            detail += "; the message was on stdout"
    else:
        code = run.exit if run.exit is not None else -1
        detail = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        if scenario.items == 0:
            detail += " for N = 0"
    if not found and scenario.items and message in run.stderr:
        detail += "; printed the message on stderr, not on stdout"
        stderr = ""
    elif not found and scenario.items:
        detail += f"; {_diagnose(run.stdout, db, message)}"
    if stderr:
        detail += f"; stderr: {stderr}"
    return CheckResult(scenario.name, True, False, detail, data)


async def run_client_checks(
    command: Sequence[str],
    *,
    transport: str = "tcp",
    timeout: float = 20.0,
    scenarios: Sequence[str] | None = None,
    seed: int | None = None,
) -> Report:
    """Run the client ``command`` in every scenario for ``transport`` (or only the
    named ones). ``seed`` makes the secrets, shuffles and faults reproducible.
    Raises :class:`ClientCommandError` when the command cannot run at all."""
    if transport not in ("tcp", "udp"):
        raise ValueError("transport must be tcp or udp")
    if not command:
        raise ClientCommandError("missing COMMAND")
    if not any("{port}" in arg for arg in command):
        raise ClientCommandError(
            "COMMAND must contain {port} (and usually {host}): they are replaced by the"
            " address of each tracker this check starts"
        )
    rng = random.Random(seed)
    checks = [
        await _run_scenario(s, command, transport, timeout, rng)
        for s in scenarios_for(transport, scenarios)
    ]
    return Report("client", shlex.join(command), transport, tuple(checks))


def check_client(
    command: Sequence[str],
    *,
    transport: str = "tcp",
    timeout: float = 20.0,
    scenarios: Sequence[str] | None = None,
    seed: int | None = None,
) -> Report:
    """:func:`run_client_checks` in a fresh event loop."""
    return asyncio.run(
        run_client_checks(
            command, transport=transport, timeout=timeout, scenarios=scenarios, seed=seed
        )
    )
