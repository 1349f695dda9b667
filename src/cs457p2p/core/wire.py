"""The Part 1 wire format, sans I/O: the constants and every message's bytes.

* register: the 8 raw bytes ``REGISTER`` -> N, pickled;
* item: position ``i``, pickled (ASCII digits are accepted too) -> ``(SEQNUM, VALUE)``,
  pickled;
* anything else -> ``'Bad request'``, pickled.

(docs/PROTOCOL.md says it in words.) Everything we send is pickle protocol 2, the newest
that Python 2 reads, written without memo opcodes. The request stream parser is in
:mod:`~cs457p2p.core.requests` and the answer side in :mod:`~cs457p2p.core.answers`.
Nothing here touches a socket or a clock.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable, Sequence
from itertools import accumulate, islice

from .decoder import Value

__all__ = [
    "AMPLIFICATION",
    "ARG_SIZE",
    "BAD_REQUEST",
    "BAD_REQUEST_TEXT",
    "ITEM_HEAD",
    "ITEM_HEAD_SIZE",
    "ITEM_PREFIX",
    "ITEM_TAIL",
    "MAX_ANSWER",
    "MAX_DATAGRAM",
    "MAX_REQUEST",
    "REGISTER",
    "REQUEST_SIZE",
    "encode",
    "encode_count",
    "encode_item",
    "encode_item_blob",
    "encode_position",
    "position_request",
    "position_run_bytes",
    "position_run_size",
    "positions_fitting",
    "read_item_blob",
]

#: Largest answer datagram: the UDP payload limit over IPv4.
MAX_DATAGRAM = 65507
#: The most a request datagram may bring back, in multiples of its own size (the
#: tracker's rule, which the client's padding must meet).
AMPLIFICATION = 3

#: The raw registration request (not pickled, no newline).
REGISTER = b"REGISTER"
#: The reference tracker does a single ``recv(1024)``: no request may be longer.
MAX_REQUEST = 1024
#: Longest answer a client accepts (one item); bounds what a hostile tracker can make
#: a client buffer for one message.
MAX_ANSWER = 1 << 20
BAD_REQUEST_TEXT = "Bad request"

_PACK_I4 = struct.Struct("<i").pack
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
ITEM_HEAD = struct.Struct("<3sIcI")
ITEM_HEAD_SIZE = ITEM_HEAD.size
ITEM_PREFIX = b"\x80\x02J"
ITEM_TAIL = b"\x86."


def encode_item(seqnum: int, value: str) -> bytes:
    """The tracker's answer to a position request."""
    if not 0 <= seqnum < 1 << 31:  # not a BININT: no database is that large
        return encode((seqnum, value))
    raw = value.encode("utf-8", "surrogatepass")
    return ITEM_HEAD.pack(ITEM_PREFIX, seqnum, b"X", len(raw)) + raw + ITEM_TAIL


def encode_item_blob(
    seqs: Sequence[int], texts: Iterable[bytes], chunk: int = 1 << 16
) -> tuple[bytes, array[int]]:
    """All item answers back to back, and the offset of each (``n + 1`` offsets):
    answer ``i`` is ``blob[offsets[i]:offsets[i+1]]``. ``texts`` (UTF-8, one per SEQNUM)
    may be a lazy iterable: it is consumed ``chunk`` answers at a time, so that building
    a million answers never holds a million temporary objects."""
    pack = ITEM_HEAD.pack
    extra = ITEM_HEAD_SIZE + len(ITEM_TAIL)
    parts: list[bytes] = []
    offsets = array("Q", [0])
    source = iter(texts)
    for k in range(0, len(seqs), chunk):
        part_seqs = seqs[k : k + chunk]
        part_texts = list(islice(source, len(part_seqs)))
        parts.append(
            b"".join(
                [
                    pack(ITEM_PREFIX, s, b"X", len(t)) + t + ITEM_TAIL
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
    _, seq, _, size = ITEM_HEAD.unpack_from(answer, 0)
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


ARG_SIZE = {0x4B: 1, 0x4D: 2, 0x4A: 4}  # BININT1, BININT2, BININT: bytes of argument
# a whole position request by opcode: PROTO 2, the opcode, its argument, STOP
REQUEST_SIZE = {op: 3 + size + 1 for op, size in ARG_SIZE.items()}
_PACK_REQUEST_M = struct.Struct("<3sHc").pack
_PACK_REQUEST_J = struct.Struct("<3sic").pack


def position_request(index: int) -> bytes:
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


def positions_fitting(start: int, available: int) -> int:
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
