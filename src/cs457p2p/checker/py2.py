"""Python 2's pickles, written by hand: what the course's Python 2 programs send
(``pickle.dumps`` of Python 2, protocol 0, byte strings ``S'...'``). Only used to play a
reference-style tracker; tested byte for byte against a real Python 2.7 where one is
installed."""

from __future__ import annotations

__all__ = ["PROTOCOL0_BAD_REQUEST", "protocol0_count", "protocol0_item", "py2_repr"]


def py2_repr(raw: bytes) -> bytes:
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
    return b"(I%d\nS%s\np0\ntp1\n." % (seq, py2_repr(value.encode("utf-8")))


PROTOCOL0_BAD_REQUEST = b"S'Bad request'\np0\n."
