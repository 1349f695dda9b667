"""The Part 1 wire protocol, sans I/O: message encoding, the incremental stream parsers,
and the checks that turn decoded answers into facts.

Bytes (see ``shared/spec/WIRE.md``):

* register: the 8 raw bytes ``REGISTER`` -> pickled N;
* item: pickled position ``i`` (or ASCII digits, which we accept too) -> pickled
  ``(SEQNUM, VALUE)``;
* anything else -> pickled ``'Bad request'``.

Nothing here touches a socket or a clock. The transports feed bytes in and write out
the bytes these functions return.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, islice

from .decoder import _UNPACK_U8, DecodeError, Incomplete, Value, _py2_text, decode_prefix
from .speedups import DecodeItems, c_decode_items

__all__ = [
    "ANSWER_PROTOCOL",
    "BAD_REQUEST",
    "BAD_REQUEST_TEXT",
    "MAX_ANSWER",
    "MAX_DATAGRAM",
    "MAX_REQUEST",
    "REGISTER",
    "AnswerParser",
    "BadRequest",
    "Position",
    "PositionRun",
    "ProtocolError",
    "Register",
    "Request",
    "RequestParser",
    "decode_item_answers",
    "decode_items_fast",
    "decode_items_py",
    "encode",
    "encode_count",
    "encode_item",
    "encode_item_blob",
    "encode_position",
    "expand_runs",
    "format_address",
    "interpret_count",
    "interpret_item",
    "lone_request",
    "position_run_bytes",
    "position_run_size",
    "read_item_blob",
    "single_position",
]

#: Largest answer datagram: the UDP payload limit over IPv4.
MAX_DATAGRAM = 65507

#: The raw registration request (not pickled, no newline).
REGISTER = b"REGISTER"
#: The reference tracker does a single ``recv(1024)``: no request may be longer.
MAX_REQUEST = 1024
#: Longest answer a client accepts (one item); bounds what a hostile tracker can make
#: a client buffer for one message.
MAX_ANSWER = 1 << 20
#: Pickle protocol of everything we send: the newest that Python 2 peers can read.
ANSWER_PROTOCOL = 2
BAD_REQUEST_TEXT = "Bad request"

_PACK_I4 = struct.Struct("<i").pack
_UNPACK_I4 = struct.Struct("<i").unpack_from
_UNPACK_U2 = struct.Struct("<H").unpack_from
_PACK_U4 = struct.Struct("<I").pack
_PACK_U2 = struct.Struct("<H").pack
_PACK_F8 = struct.Struct(">d").pack
_TUPLE_END = (b")", b"\x85", b"\x86", b"\x87")  # EMPTY_TUPLE, TUPLE1, TUPLE2, TUPLE3


# --------------------------------------------------------------------------- encoding


def _encode_body(value: Value, out: list[bytes]) -> bool:
    """Append the opcodes for ``value`` to ``out``; return True if bytes were used."""
    if value is None:
        out.append(b"N")
    elif value is True:
        out.append(b"\x88")
    elif value is False:
        out.append(b"\x89")
    elif isinstance(value, int):
        if 0 <= value < 256:
            out.append(b"K" + bytes((value,)))
        elif 0 <= value < 65536:
            out.append(b"M" + _PACK_U2(value))
        elif -(2**31) <= value < 2**31:
            out.append(b"J" + _PACK_I4(value))
        else:
            raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            if len(raw) < 256:
                out.append(b"\x8a" + bytes((len(raw),)) + raw)
            else:
                out.append(b"\x8b" + _PACK_I4(len(raw)) + raw)
    elif isinstance(value, float):
        out.append(b"G" + _PACK_F8(value))
    elif isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
        out.append(b"X" + _PACK_U4(len(raw)) + raw)
    elif isinstance(value, bytes):
        if len(value) < 256:
            out.append(b"C" + bytes((len(value),)) + value)
        else:
            out.append(b"B" + _PACK_U4(len(value)) + value)
        return True
    elif isinstance(value, tuple):
        used = False
        if len(value) > 3:
            out.append(b"(")
        for item in value:
            used |= _encode_body(item, out)
        out.append(_TUPLE_END[len(value)] if len(value) <= 3 else b"t")
        return used
    elif isinstance(value, list):
        used = False
        out.append(b"]")
        if value:
            out.append(b"(")
            for item in value:
                used |= _encode_body(item, out)
            out.append(b"e")
        return used
    else:
        raise TypeError(f"cannot encode {type(value).__name__}")
    return False


def encode(value: Value) -> bytes:
    """Pickle ``value`` (allowed types only) as protocol 2, without memo opcodes.

    ``pickle.loads`` reads the result as ``value``. Values containing ``bytes`` need the
    protocol 3 BINBYTES opcodes and so get a protocol 3 header (Python 2 cannot read them;
    Part 1 never sends bytes).
    """
    out: list[bytes] = []
    used_bytes = _encode_body(value, out)
    return (b"\x80\x03" if used_bytes else b"\x80\x02") + b"".join(out) + b"."


def encode_count(n: int) -> bytes:
    """The tracker's answer to REGISTER."""
    return encode(n)


#: Our item answers: PROTO 2, BININT seq, BINUNICODE len, text, TUPLE2, STOP. SEQNUM is
#: always a 4-byte BININT, so every answer has the same 12-byte head: the client's fast
#: path reads it with one struct call (any pickle reader reads it as the same tuple).
_ITEM_HEAD = struct.Struct("<3sIcI")
ITEM_HEAD_SIZE = _ITEM_HEAD.size
_ITEM_PREFIX = b"\x80\x02J"
_ITEM_TAIL = b"\x86."


def encode_item(seqnum: int, value: str) -> bytes:
    """The tracker's answer to a position request."""
    if not 0 <= seqnum < 1 << 31:  # not a BININT: no database is that large
        return encode((seqnum, value))
    raw = value.encode("utf-8", "surrogatepass")
    return _ITEM_HEAD.pack(_ITEM_PREFIX, seqnum, b"X", len(raw)) + raw + _ITEM_TAIL


def encode_item_blob(
    seqs: Sequence[int], texts: Iterable[bytes], chunk: int = 1 << 16
) -> tuple[bytes, array[int]]:
    """All item answers back to back, and the offset of each (``n + 1`` offsets):
    answer ``i`` is ``blob[offsets[i]:offsets[i+1]]``. ``texts`` (UTF-8, one per SEQNUM)
    may be a lazy iterable: it is consumed ``chunk`` answers at a time, so that building
    a million answers never holds a million temporary objects."""
    pack = _ITEM_HEAD.pack
    extra = ITEM_HEAD_SIZE + len(_ITEM_TAIL)
    parts: list[bytes] = []
    offsets = array("Q", [0])
    source = iter(texts)
    for k in range(0, len(seqs), chunk):
        part_seqs = seqs[k : k + chunk]
        part_texts = list(islice(source, len(part_seqs)))
        parts.append(
            b"".join(
                [
                    pack(_ITEM_PREFIX, s, b"X", len(t)) + t + _ITEM_TAIL
                    for s, t in zip(part_seqs, part_texts, strict=True)
                ]
            )
        )
        offsets.extend(
            islice(
                accumulate(map(extra.__add__, map(len, part_texts)), initial=offsets[-1]), 1, None
            )
        )
    if next(source, None) is not None:
        raise ValueError("more texts than SEQNUMs")
    return b"".join(parts), offsets


def read_item_blob(answer: bytes | memoryview) -> tuple[int, str]:
    """``(SEQNUM, VALUE)`` of one answer made by :func:`encode_item` (our own bytes)."""
    _, seq, _, size = _ITEM_HEAD.unpack_from(answer, 0)
    return seq, bytes(answer[ITEM_HEAD_SIZE : ITEM_HEAD_SIZE + size]).decode(
        "utf-8", "surrogatepass"
    )


def encode_position(index: int) -> bytes:
    """The client's request for the item at ``index``."""
    return encode(index)


# Positions as :func:`encode_position` writes them, by region: (first position, end,
# payload width, opcode). Every request in a region has the same size, 4 + width bytes.
_RUN_REGIONS = ((0, 1 << 8, 1, b"K"), (1 << 8, 1 << 16, 2, b"M"), (1 << 16, 1 << 31, 4, b"J"))
_ARRAY_CODE = {1: "B", 2: "H", 4: "I"}
_BIG_ENDIAN = sys.byteorder == "big"


_ARG_SIZE = {0x4B: 1, 0x4D: 2, 0x4A: 4}  # BININT1, BININT2, BININT: bytes of argument
# a whole position request by opcode: PROTO 2, the opcode, its argument, STOP
_REQUEST_SIZE = {op: 3 + size + 1 for op, size in _ARG_SIZE.items()}
_PACK_REQUEST_M = struct.Struct("<3sHc").pack
_PACK_REQUEST_J = struct.Struct("<3sic").pack


def _position_request(index: int) -> bytes:
    """:func:`encode_position` for ``0 <= index < 2**31``, without the generic encoder."""
    if index < 1 << 8:
        return b"\x80\x02K%c." % index
    if index < 1 << 16:
        return _PACK_REQUEST_M(b"\x80\x02M", index, b".")
    return _PACK_REQUEST_J(b"\x80\x02J", index, b".")


def position_run_size(start: int, count: int) -> int:
    """Bytes that :func:`position_run_bytes` ``(start, count)`` takes."""
    size = 0
    stop = start + count
    for lo, hi, width, _ in _RUN_REGIONS:
        a, b = max(start, lo), min(stop, hi)
        if a < b:
            size += (b - a) * (4 + width)
    return size


def _positions_fitting(start: int, available: int) -> int:
    """How many consecutive position requests from ``start`` fit in ``available`` bytes."""
    count = 0
    for lo, hi, width, _ in _RUN_REGIONS:
        if start + count >= hi:
            continue
        first = max(start + count, lo)
        each = 4 + width
        k = min(hi - first, available // each)
        count += k
        available -= k * each
        if first + k < hi:
            break
    return count


def position_run_bytes(start: int, count: int) -> bytes:
    """``b"".join(encode_position(i) for i in range(start, start + count))``, built
    with slice assignments instead of one object per position."""
    parts = []
    stop = start + count
    for lo, hi, width, op in _RUN_REGIONS:
        a, b = max(start, lo), min(stop, hi)
        if a >= b:
            continue
        m, each = b - a, 4 + width
        out = bytearray(m * each)
        out[0::each] = b"\x80" * m
        out[1::each] = b"\x02" * m
        out[2::each] = op * m
        out[each - 1 :: each] = b"." * m
        values = array(_ARRAY_CODE[width], range(a, b))
        if _BIG_ENDIAN:
            values.byteswap()
        raw = values.tobytes()
        for j in range(width):
            out[3 + j :: each] = raw[j::width]
        parts.append(bytes(out))
    return b"".join(parts)


BAD_REQUEST = encode(BAD_REQUEST_TEXT)


# --------------------------------------------------------------------- request parser


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
    message is unknown): the connection is closed after the answer.
    """

    reason: str
    fatal: bool


@dataclass(frozen=True, slots=True)
class PositionRun:
    """``count`` position requests for ``start, start+1, ...`` back to back, every one
    already known to be in range (only a parser with ``run_limit`` makes these)."""

    start: int
    count: int


Request = Register | Position | PositionRun | BadRequest


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


def _request_from_value(value: Value) -> Request:
    if isinstance(value, bool):
        return BadRequest("a bool is not a position", fatal=False)
    if isinstance(value, int):
        return Position(value)
    if value in ("REGISTER", b"REGISTER"):
        return Register()
    return BadRequest(f"a pickled {type(value).__name__} is not a request", fatal=False)


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
            size = _ARG_SIZE.get(op)
            if size is None or _UNPACK_U8(buf, p + 1)[0] != size + 2:
                return None
            p += 9
        size = _ARG_SIZE.get(op)
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


def lone_request(data: bytes, max_request: int, run_limit: int = 0) -> Request | None:
    """The request ``data`` holds if it is one whole request and nothing more, as
    :class:`RequestParser` reads it; None for anything else (several requests, a run, a
    partial request, a digit run whose end is not known yet). The first bytes of a
    reference-style connection: REGISTER and a lone pickled int are read directly, the
    rest by the parser (the tests check both give the same on generated bytes)."""
    if data == REGISTER:
        return Register()
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

    __slots__ = ("_buf", "_needed", "finished", "max_request", "run_limit")

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

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buf)

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
        most = min(_positions_fitting(start, n - pos), self.run_limit - start, self.MAX_RUN)
        if most < 2:
            return None
        # Cheap first: is the very next request start + 1? (A stream of positions that
        # are not consecutive then costs one slice compare each, not a run built.)
        after = pos + _REQUEST_SIZE[op]
        second = _position_request(start + 1)
        if buf[after : after + len(second)] != second:
            return None
        good = min(most, self.PROBE)
        expected = position_run_bytes(start, good)
        if buf[pos : pos + len(expected)] != expected:
            return None
        if most > good:
            expected = position_run_bytes(start, most)
            if buf[pos : pos + len(expected)] == expected:
                good = most
            else:  # the run ends somewhere in between: find where
                view, have = memoryview(expected), memoryview(buf)
                bad = most
                while bad - good > 1:
                    mid = (good + bad) // 2
                    size = position_run_size(start, mid)
                    if view[:size] == have[pos : pos + size]:
                        good = mid
                    else:
                        bad = mid
        return PositionRun(start, good)

    def _fail(self, reason: str, out: list[Request]) -> list[Request]:
        out.append(BadRequest(reason, fatal=True))
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
                return self._fail("not REGISTER, a pickle or ASCII digits", out)
            if first in _DIGITS:
                end = pos + 1
                while end < n and buf[end] in _DIGITS:
                    end += 1
                if end - pos > _MAX_DIGITS:
                    return self._fail("ASCII position too long", out)
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
                value, end = decode_prefix(buf, pos, max_size=self.max_request)
            except Incomplete as e:
                self._needed = e.needed
                break
            except DecodeError as e:
                return self._fail(f"refused pickle: {e}", out)
            out.append(_request_from_value(value))
            pos = end
        self._buf = buf[pos:]
        if final and self._buf:
            # The peer stopped in the middle of a message.
            return self._fail("incomplete request", out)
        return out


# ---------------------------------------------------------------------- answer parser


class AnswerParser:
    """Splits the bytes a tracker sends into decoded answers (pickles only).

    Raises :class:`~cs457p2p.decoder.DecodeError` for a refused or oversized answer.
    """

    __slots__ = ("_buf", "_needed", "max_answer")

    def __init__(self, max_answer: int = MAX_ANSWER) -> None:
        self._buf = b""
        self._needed = 0
        self.max_answer = max_answer

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Value]:
        buf = self._buf + data if self._buf else data
        self._buf = buf
        n = len(buf)
        if n < self._needed:
            return []
        pos = 0
        out: list[Value] = []
        self._needed = 0
        while pos < n:
            try:
                value, end = decode_prefix(buf, pos, max_size=self.max_answer)
            except Incomplete as e:
                self._needed = e.needed
                break
            out.append(value)
            pos = end
        self._buf = buf[pos:]
        return out


_SEPARATOR = _ITEM_TAIL + _ITEM_PREFIX  # the end of one answer and the start of the next
_UNPACK_NEXT = struct.Struct(f"<{len(_SEPARATOR)}sIcI").unpack_from


def format_address(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 literal."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def decode_items_py(buf: bytes, pos: int, count: int, n: int) -> tuple[list[int], list[bytes], int]:
    """Read up to ``count`` item answers in our tracker's own shape (:func:`encode_item`)
    from ``buf[pos]``; return their SEQNUMs, their UTF-8 VALUEs and where it stopped.

    Every byte is checked: the head (PROTO 2, BININT, BINUNICODE), the length against
    the bytes present, the TUPLE2 and STOP, and ``0 <= SEQNUM < n``. It stops at the
    first answer that is incomplete or of any other shape (or in any way wrong), which
    is then the restricted decoder's to read, so both paths accept the same answers.
    UTF-8 validity of the VALUEs is for the caller to check (in bulk).

    One struct call per answer reads the end of the previous answer together with the
    head of the next (``\x86.\x80\x02J`` + SEQNUM + ``X`` + length).

    This is the pure-Python version; :data:`decode_items_fast` is its C twin when the
    optional extension is built (see :mod:`cs457p2p.speedups`).
    """
    if pos < 0:
        raise ValueError("pos must not be negative")
    seqs: list[int] = []
    texts: list[bytes] = []
    end = len(buf)
    if count <= 0 or pos + ITEM_HEAD_SIZE > end:
        return seqs, texts, pos
    prefix, seq, x, size = _ITEM_HEAD.unpack_from(buf, pos)
    if prefix != _ITEM_PREFIX or x != b"X" or seq >= n:
        return seqs, texts, pos
    add_seq, add_text = seqs.append, texts.append
    unpack, sep_expected = _UNPACK_NEXT, _SEPARATOR
    tail, head = _ITEM_TAIL, ITEM_HEAD_SIZE
    body = pos + head
    while True:
        stop = body + size  # where this answer's tail starts
        after = stop + 2  # where the next answer starts
        if after > end:
            break  # this answer is not all here yet
        if count == 1 or after + head > end:  # the last one we take: check its tail alone
            if buf[stop:after] == tail:
                add_seq(seq)
                add_text(buf[body:stop])
                pos = after
            break
        sep, next_seq, x, size = unpack(buf, stop)
        if sep != sep_expected:  # the next answer is not ours (or this tail is wrong)
            if buf[stop:after] == tail:
                add_seq(seq)
                add_text(buf[body:stop])
                pos = after
            break
        add_seq(seq)
        add_text(buf[body:stop])
        pos = after
        count -= 1
        if x != b"X" or next_seq >= n:
            break
        seq, body = next_seq, after + head
    return seqs, texts, pos


decode_items_fast: DecodeItems = c_decode_items or decode_items_py
"""Read up to ``count`` item answers of our own shape: see :func:`decode_items_py`."""


def decode_item_answers(buf: bytes, n: int) -> tuple[list[int], list[bytes]]:
    """Every item answer in ``buf`` (a whole datagram): SEQNUMs and UTF-8 VALUEs.

    Answers of our own shape are read by :func:`decode_items_fast`, any other through
    the restricted decoder and :func:`interpret_item`. Raises
    :class:`~cs457p2p.decoder.DecodeError` or :class:`ProtocolError`, also when ``buf``
    ends inside an answer.
    """
    seqs, texts, pos = decode_items_fast(buf, 0, len(buf), n)
    end = len(buf)
    while pos < end:
        try:
            value, pos = decode_prefix(buf, pos, max_size=end - pos + 1)
        except Incomplete:
            raise ProtocolError("an answer datagram ends in the middle of a pickle") from None
        seq, text = interpret_item(value, n)
        seqs.append(seq)
        texts.append(text.encode("utf-8", "surrogatepass"))
        more_seqs, more_texts, pos = decode_items_fast(buf, pos, end - pos, n)
        seqs += more_seqs
        texts += more_texts
    return seqs, texts


# -------------------------------------------------------------- answer interpretation


class ProtocolError(Exception):
    """The tracker answered something the protocol does not allow."""


def _describe(value: Value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def interpret_count(value: Value) -> int:
    """The N of a REGISTER answer, or :class:`ProtocolError`."""
    if value == BAD_REQUEST_TEXT:
        raise ProtocolError("tracker answered 'Bad request' to REGISTER")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"REGISTER answer is not an integer: {_describe(value)}")
    if value < 0:
        raise ProtocolError(f"REGISTER answer is negative: {value}")
    return value


def interpret_item(value: Value, n: int) -> tuple[int, str]:
    """The ``(SEQNUM, VALUE)`` of an item answer, or :class:`ProtocolError`.

    VALUE must be text; Python 3 ``bytes`` are read as Python 2 strings are.
    """
    if value == BAD_REQUEST_TEXT:
        raise ProtocolError("tracker answered 'Bad request' to an item request")
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ProtocolError(f"item answer is not a (SEQNUM, VALUE) pair: {_describe(value)}")
    seq, text = value
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise ProtocolError(f"SEQNUM is not an integer: {_describe(seq)}")
    if not 0 <= seq < n:
        raise ProtocolError(f"SEQNUM {seq} is out of range 0..{n - 1}")
    if isinstance(text, bytes):
        text = _py2_text(text)
    if not isinstance(text, str):
        raise ProtocolError(f"VALUE of SEQNUM {seq} is not text: {_describe(text)}")
    return seq, text
