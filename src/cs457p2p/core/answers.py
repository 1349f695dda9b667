"""The client's side of Part 1, sans I/O: the answer stream parser, the fast reader of
our own tracker's item answers, and the checks that turn decoded answers into facts
(:func:`interpret_count`, :func:`interpret_item`), raising
:class:`~cs457p2p.core.errors.RemoteProtocolError` for anything the protocol does not allow.
"""

from __future__ import annotations

import struct

from .decoder import NeedData, Value, decode_prefix, describe, py2_text
from .errors import RemoteProtocolError
from .pickle_memo import PICKLES
from .speedups import DecodeItems, c_decode_items
from .wire import BAD_REQUEST_TEXT, ITEM_HEAD, ITEM_HEAD_SIZE, ITEM_PREFIX, ITEM_TAIL, MAX_ANSWER

__all__ = [
    "AnswerParser",
    "decode_item_answers",
    "decode_items_fast",
    "decode_items_py",
    "interpret_count",
    "interpret_item",
]


class AnswerParser:
    """Splits the bytes a tracker sends into decoded answers (pickles only).

    Raises :class:`~cs457p2p.core.decoder.DecodeError` for a refused or oversized answer.
    """

    __slots__ = ("_buf", "_needed", "max_answer")

    def __init__(self, max_answer: int = MAX_ANSWER) -> None:
        self._buf = b""
        self._needed = 0
        self.max_answer = max_answer

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes, want: int | None = None) -> list[Value]:
        """Add bytes; return the answers they complete, in order. With ``want``, at most
        that many: what follows stays buffered, unread (as ``pickle.loads`` ignores what
        follows STOP)."""
        buf = self._buf + data if self._buf else data
        self._buf = buf
        n = len(buf)
        if n < self._needed:
            return []
        pos = 0
        out: list[Value] = []
        self._needed = 0
        while pos < n and (want is None or len(out) < want):
            got = PICKLES.decode_prefix(buf, pos, max_size=self.max_answer)
            if isinstance(got, NeedData):
                self._needed = got.needed
                break
            value, end = got
            out.append(value)
            pos = end
        self._buf = buf[pos:]
        return out


_SEPARATOR = ITEM_TAIL + ITEM_PREFIX  # the end of one answer and the start of the next
_UNPACK_NEXT = struct.Struct(f"<{len(_SEPARATOR)}sIcI").unpack_from


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
    prefix, seq, x, size = ITEM_HEAD.unpack_from(buf, pos)
    if prefix != ITEM_PREFIX or x != b"X" or seq >= n:
        return seqs, texts, pos
    add_seq, add_text = seqs.append, texts.append
    unpack, sep_expected = _UNPACK_NEXT, _SEPARATOR
    tail, head = ITEM_TAIL, ITEM_HEAD_SIZE
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
    :class:`~cs457p2p.core.decoder.DecodeError` or :class:`RemoteProtocolError`, also when ``buf``
    ends inside an answer.
    """
    seqs, texts, pos = decode_items_fast(buf, 0, len(buf), n)
    end = len(buf)
    while pos < end:
        got = decode_prefix(buf, pos, max_size=end - pos + 1)
        if isinstance(got, NeedData):
            raise RemoteProtocolError("an answer datagram ends in the middle of a pickle")
        value, pos = got
        seq, text = interpret_item(value, n)
        seqs.append(seq)
        texts.append(text.encode("utf-8", "surrogatepass"))
        more_seqs, more_texts, pos = decode_items_fast(buf, pos, end - pos, n)
        seqs += more_seqs
        texts += more_texts
    return seqs, texts


# -------------------------------------------------------------- answer interpretation


def interpret_count(value: Value) -> int:
    """The N of a REGISTER answer, or :class:`RemoteProtocolError`."""
    if value == BAD_REQUEST_TEXT:
        raise RemoteProtocolError("tracker answered 'Bad request' to REGISTER")
    if isinstance(value, bool) or not isinstance(value, int):
        raise RemoteProtocolError(f"REGISTER answer is not an integer: {describe(value)}")
    if value < 0:
        raise RemoteProtocolError(f"REGISTER answer is negative: {describe(value)}")
    return value


def interpret_item(value: Value, n: int) -> tuple[int, str]:
    """The ``(SEQNUM, VALUE)`` of an item answer, or :class:`RemoteProtocolError`.

    VALUE must be text; Python 3 ``bytes`` are read as Python 2 strings are.
    """
    if value == BAD_REQUEST_TEXT:
        raise RemoteProtocolError("tracker answered 'Bad request' to an item request")
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise RemoteProtocolError(f"item answer is not a (SEQNUM, VALUE) pair: {describe(value)}")
    seq, text = value
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise RemoteProtocolError(f"SEQNUM is not an integer: {describe(seq)}")
    if not 0 <= seq < n:
        raise RemoteProtocolError(f"SEQNUM {describe(seq)} is out of range 0..{n - 1}")
    if isinstance(text, bytes):
        text = py2_text(text)
    if not isinstance(text, str):
        raise RemoteProtocolError(f"VALUE of SEQNUM {seq} is not text: {describe(text)}")
    return seq, text
