"""The tracker's side of Part 1, sans I/O: the request types, and the incremental parser
that splits whatever bytes a client sends into requests, however they are cut.

Messages: the raw ``REGISTER``; a pickle of any protocol (read by the restricted
decoder: an int is a position, the string ``'REGISTER'`` registers, a tuple whose first
item is text is a Part 2 message for the ring, :class:`RingMessage`); or ASCII digits.
Our own clients' runs of consecutive positions are recognised in bulk
(:class:`PositionRun`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from .decoder import DecodeError, NeedData, Value
from .pickle_memo import PICKLES
from .wire import (
    ARG_SIZE,
    MAX_REQUEST,
    REGISTER,
    REQUEST_SIZE,
    position_request,
    position_run_bytes,
    position_run_size,
    positions_fitting,
)

__all__ = [
    "KEPT",
    "BadRequest",
    "Position",
    "PositionRun",
    "Register",
    "Request",
    "RequestParser",
    "RingMessage",
    "expand_runs",
    "got",
    "lone_digits",
    "lone_request",
    "single_position",
]

_UNPACK_I4 = struct.Struct("<i").unpack_from
_UNPACK_U2 = struct.Struct("<H").unpack_from
_UNPACK_U8 = struct.Struct("<Q").unpack_from


@dataclass(frozen=True, slots=True)
class Register:
    """A registration request."""


@dataclass(frozen=True, slots=True)
class Position:
    """A request for the item stored at position ``index`` (not yet range-checked)."""

    index: int


@dataclass(frozen=True, slots=True)
class BadRequest:
    """A request the tracker must answer with ``'Bad request'``.

    ``fatal`` means the stream cannot be resynchronised after it (the end of the bad
    message is unknown): the connection is closed after the answer. ``data``: the
    refused bytes, the first :data:`KEPT` of them (empty when the refusal is about no
    bytes in particular), for :func:`~cs457p2p.core.refusals.explain` to say in words.
    """

    reason: str
    fatal: bool
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class PositionRun:
    """``count`` position requests for ``start, start+1, ...`` back to back, every one
    already known to be in range (only a parser with ``run_limit`` makes these)."""

    start: int
    count: int


@dataclass(frozen=True, slots=True)
class RingMessage:
    """A Part 2 message (a pickled tuple or list whose first item is text, its tag), for
    the ring or a peer's state to read. The connection that read it stamps it with
    ``peer`` (the address it came from), ``at`` (when) and ``registers`` (the REGISTERs
    the same connection sent before it: one connection cannot fill the ring); its answer
    is made when the connection's rules take it (acting on it then, exactly once), not
    kept here."""

    value: Value
    peer: str = ""
    at: float = 0.0
    registers: int = 0

    @property
    def is_register(self) -> bool:
        """Is it a REGISTER (whatever its fields)?"""
        value = self.value
        return isinstance(value, (tuple, list)) and value[0] in ("REGISTER", b"REGISTER")


Request = Register | Position | PositionRun | BadRequest | RingMessage


def expand_runs(requests: Sequence[Request]) -> list[Request]:
    """The same requests with every :class:`PositionRun` spelled out as positions."""
    out: list[Request] = []
    for r in requests:
        if isinstance(r, PositionRun):
            out.extend(Position(i) for i in range(r.start, r.start + r.count))
        else:
            out.append(r)
    return out


_DIGITS = frozenset(b"0123456789")
_SEPARATORS = b" \t\r\n"
_MAX_DIGITS = 20  # longer ASCII positions cannot be in range of any database


#: Bytes of a refused message shown in its reason.
_SHOWN = 24
#: Bytes of a refused message kept with it (:attr:`BadRequest.data`).
KEPT = 256


def got(buf: bytes, pos: int = 0) -> str:
    """What arrived at ``buf[pos]``, for a refusal's reason: ``got b'register'``, the
    first bytes escaped (and ``...`` when there were more)."""
    piece = bytes(buf[pos : pos + _SHOWN])
    return f"got {piece!r}" + ("..." if len(buf) - pos > _SHOWN else "")


def _request_from_value(value: Value, raw: bytes) -> Request:
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], str):
        return RingMessage(value)  # ('ECHO', ...), ('REGISTER', ...): Part 2
    if isinstance(value, bool):
        return BadRequest(f"{got(raw)}: a pickled bool, not a position", False, raw[:KEPT])
    if isinstance(value, int):
        return Position(value)
    if value in ("REGISTER", b"REGISTER"):
        return Register()
    what = type(value).__name__
    return BadRequest(
        f"{got(raw)}: a pickled {what}, not a position or REGISTER", False, raw[:KEPT]
    )


def single_position(buf: bytes, pos: int, max_size: int) -> tuple[int, int] | None:
    """The position and end of one pickled int at ``buf[pos]`` in the shapes clients
    send (protocol 0 ``I5\\n.``, protocols 2-5 ``K``/``M``/``J`` with or without an
    exact FRAME), read without the restricted decoder; None for anything else, which
    is then the decoder's to read. Whenever it answers, :func:`decode_prefix` gives the
    same int and end (the tests check this on generated pickles)."""
    n = len(buf)
    first = buf[pos] if pos < n else -1
    if first == 0x80:  # PROTO
        if n - pos < 5 or not 2 <= buf[pos + 1] <= 5:
            return None
        p = pos + 2
        op = buf[p]
        if op == 0x95:  # FRAME: only when its length is exactly the rest of the pickle
            if n - p < 12:
                return None
            op = buf[p + 9]
            size = ARG_SIZE.get(op)
            if size is None or _UNPACK_U8(buf, p + 1)[0] != size + 2:
                return None
            p += 9
        size = ARG_SIZE.get(op)
        end = p + size + 2 if size is not None else 0
        if not size or end > n or buf[end - 1] != 0x2E or end - pos > max_size:
            return None
        if op == 0x4B:
            return buf[p + 1], end
        if op == 0x4D:
            return _UNPACK_U2(buf, p + 1)[0], end
        return _UNPACK_I4(buf, p + 1)[0], end
    if first == 0x49:  # INT, protocol 0: plain digits, no sign, no leading zero
        stop = buf.find(b"\n", pos + 1, pos + 12)
        if stop < 0 or stop + 2 > n or buf[stop + 1] != 0x2E or stop + 2 - pos > max_size:
            return None
        digits = buf[pos + 1 : stop]
        if not digits.isdigit() or (digits[0] == 0x30 and len(digits) > 1):
            return None
        return int(digits), stop + 2
    return None


def lone_digits(data: bytes) -> Position | None:
    """The position a read of nothing but ASCII digits stands for (None otherwise)."""
    if data.isdigit() and len(data) <= _MAX_DIGITS:
        return Position(int(data))
    return None


def lone_request(data: bytes, max_request: int, run_limit: int = 0) -> Request | None:
    """The request ``data`` holds if it is one whole request and nothing more, as
    :class:`RequestParser` reads it; None for anything else (several requests, a run, a
    partial request, a digit run whose end is not known yet). The first bytes of a
    reference-style connection: REGISTER and a lone pickled int are read directly, the
    rest by the parser (the tests check both give the same on generated bytes). A read
    of nothing but ASCII digits is one whole position, as the reference's single
    ``recv`` takes it (the parser alone would wait to see where the digits end)."""
    if data == REGISTER:
        return Register()
    digits = lone_digits(data)
    if digits is not None:
        return digits
    hit = single_position(data, 0, max_request)
    if hit is not None and hit[1] == len(data):
        return Position(hit[0])
    parser = RequestParser(max_request, run_limit)
    requests = parser.feed(data)
    if len(requests) != 1 or parser.buffered or isinstance(requests[0], PositionRun):
        return None
    return requests[0]


class RequestParser:
    """Splits the bytes a client sends into requests, however they are cut.

    Messages: the raw ``REGISTER``; a pickle of any protocol (self-delimiting, decoded by
    the restricted decoder: an int is a position, the string ``'REGISTER'`` registers);
    or ASCII digits, ended by a space, tab, CR or LF, or by any byte that is not a digit.
    Separators between messages are skipped. A digit run at the end of the bytes so far
    is held back until more bytes show where it ends, or until the transport calls
    :meth:`flush` (the peer went quiet or closed), because ``b"1"`` then ``b"2"`` is the
    position 12.

    After a fatal :class:`BadRequest` the parser is finished and ignores further input.

    With ``run_limit`` N (the database size), consecutive in-range positions written as
    :func:`encode_position` writes them come out as one :class:`PositionRun`, found by
    comparing bytes in bulk; :func:`expand_runs` of the output is exactly what the parser
    without ``run_limit`` gives.
    """

    __slots__ = ("_buf", "_needed", "finished", "max_request", "ring_messages", "run_limit")

    #: Longest run the fast path takes at once.
    MAX_RUN = 1 << 16
    #: A run is first checked on this many positions, so that a stream of positions
    #: that are not consecutive costs little.
    PROBE = 8

    def __init__(self, max_request: int = MAX_REQUEST, run_limit: int = 0) -> None:
        self._buf = b""
        self._needed = 0
        self.max_request = max_request
        self.run_limit = run_limit
        self.finished = False
        #: Part 2 messages parsed so far
        self.ring_messages = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buf)

    def pending(self) -> bytes:
        """The first :data:`KEPT` bytes received but not yet part of a message."""
        return self._buf[:KEPT]

    @property
    def holds_digits(self) -> bool:
        """True when the buffer ends in a digit run that :meth:`flush` would complete."""
        return bool(self._buf) and self._buf[0] in _DIGITS and not self.finished

    def feed(self, data: bytes) -> list[Request]:
        """Add bytes; return the requests they complete, in order."""
        if self.finished:
            return []
        buf = self._buf + data if self._buf else data
        self._buf = buf
        if len(buf) < self._needed:
            return []
        return self._parse(final=False)

    def flush(self) -> list[Request]:
        """The peer is quiet or gone: complete a pending digit run, if any."""
        if self.finished or not self._buf:
            return []
        return self._parse(final=True)

    def _run_at(self, buf: bytes, pos: int, n: int) -> PositionRun | None:
        """A run of at least two consecutive positions starting at ``buf[pos]``."""
        if n - pos < 10 or buf[pos + 1] != 2:
            return None
        op = buf[pos + 2]
        if op == 0x4B:
            start = buf[pos + 3]
        elif op == 0x4D:
            start = _UNPACK_U2(buf, pos + 3)[0]
        elif op == 0x4A:
            start = _UNPACK_I4(buf, pos + 3)[0]
        else:
            return None
        if not 0 <= start < self.run_limit:
            return None
        # Cheap first: is the very next request start + 1? (A stream of positions that
        # are not consecutive then costs one slice compare each, not a run built.)
        after = pos + REQUEST_SIZE[op]
        second = position_request(start + 1)
        if buf[after : after + len(second)] != second:
            return None
        most = min(positions_fitting(start, n - pos), self.run_limit - start, self.MAX_RUN)
        if most < 2:
            return None
        # Then one request at a time up to PROBE (a short run costs what it holds)...
        good, done = 2, after + len(second)
        probe = min(most, self.PROBE)
        while good < probe:
            expected = position_request(start + good)
            if buf[done : done + len(expected)] != expected:
                return PositionRun(start, good)
            good += 1
            done += len(expected)
        # ...then ever longer pieces (doubling), so that building the expected bytes
        # costs in proportion to the run found, however soon it ends: a read of many
        # short runs is parsed in time linear in its length, not quadratic.
        while good < most:
            count = min(good, most - good)
            expected = position_run_bytes(start + good, count)
            if buf[done : done + len(expected)] == expected:
                good += count
                done += len(expected)
                continue
            # The run ends inside this piece: find where, halving what is compared.
            view, have = memoryview(expected), memoryview(buf)
            lo, hi = 0, count  # the first lo positions of the piece match; hi do not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                a = position_run_size(start + good, lo)
                b = position_run_size(start + good, mid)
                if view[a:b] == have[done + a : done + b]:
                    lo = mid
                else:
                    hi = mid
            good += lo
            break
        return PositionRun(start, good)

    def _fail(self, reason: str, out: list[Request], buf: bytes, pos: int) -> list[Request]:
        """A message that cannot be read: refused, with what arrived, and the stream
        given up."""
        out.append(BadRequest(f"{got(buf, pos)}: {reason}", True, bytes(buf[pos : pos + KEPT])))
        self.finished = True
        self._buf = b""
        return out

    def _parse(self, final: bool) -> list[Request]:
        buf = self._buf
        n = len(buf)
        pos = 0
        out: list[Request] = []
        self._needed = 0
        while pos < n:
            first = buf[pos]
            if first in _SEPARATORS:
                pos += 1
                continue
            if first == 0x80 and self.run_limit:
                run = self._run_at(buf, pos, n)
                if run is not None:
                    out.append(run)
                    pos += position_run_size(run.start, run.count)
                    continue
            if first == 0x52:  # 'R': REGISTER (R is also REDUCE, refused in a pickle)
                have = buf[pos : pos + 8]
                if have == REGISTER:
                    out.append(Register())
                    pos += 8
                    continue
                if REGISTER.startswith(have):
                    self._needed = 8
                    break
                return self._fail("not REGISTER, a pickle or ASCII digits", out, buf, pos)
            if first in _DIGITS:
                end = pos + 1
                while end < n and buf[end] in _DIGITS:
                    end += 1
                if end - pos > _MAX_DIGITS:
                    return self._fail("an ASCII position too long", out, buf, pos)
                if end == n and not final:
                    break  # the run may continue in the next piece
                out.append(Position(int(buf[pos:end])))
                pos = end
                continue
            if first == 0x80 or first == 0x49:  # one pickled int, the common request
                hit = single_position(buf, pos, self.max_request)
                if hit is not None:
                    out.append(Position(hit[0]))
                    pos = hit[1]
                    continue
            try:
                got = PICKLES.decode_prefix(buf, pos, max_size=self.max_request)
            except DecodeError as e:
                return self._fail(f"refused pickle: {e}", out, buf, pos)
            if isinstance(got, NeedData):
                self._needed = got.needed
                break
            value, end = got
            request = _request_from_value(value, buf[pos:end])
            if type(request) is RingMessage:
                self.ring_messages += 1
            out.append(request)
            pos = end
        self._buf = buf[pos:]
        if final and self._buf:
            # The peer stopped in the middle of a message.
            return self._fail("the request ends before it is whole", out, buf, pos)
        return out
