"""Python 2's pickles, written by hand: what the course's Python 2 programs send
(``pickle.dumps`` of Python 2: protocol 0, byte strings ``S'...'``, a memo PUT after
every string and tuple). The checker plays a reference-style tracker with them, and the
tests' stand-ins of the course's programs use them too; tests/test_py2.py compares
them byte for byte with a real Python 2.7 where one is installed."""

from __future__ import annotations

from typing import Any

__all__ = ["PROTOCOL0_BAD_REQUEST", "dumps_py2", "protocol0_count", "protocol0_item", "py2_repr"]


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


class _Writer:
    """Python 2's ``pickle.Pickler`` at protocol 0, for None, bool, int, float, str (as
    a Python 2 byte string of its UTF-8), bytes, tuples and lists."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.memo = 0

    def put(self) -> None:
        self.out += b"p%d\n" % self.memo
        self.memo += 1

    def save(self, value: Any) -> None:
        if value is None:
            self.out += b"N"
        elif value is True or value is False:
            self.out += b"I01\n" if value else b"I00\n"
        elif isinstance(value, int):
            if -(2**63) <= value < 2**63:
                self.out += b"I%d\n" % value
            else:
                self.out += b"L%dL\n" % value
        elif isinstance(value, float):
            self.out += b"F" + repr(value).encode() + b"\n"
        elif isinstance(value, (str, bytes)):
            raw = value.encode("utf-8") if isinstance(value, str) else value
            self.out += b"S" + py2_repr(raw) + b"\n"
            self.put()
        elif isinstance(value, tuple):
            self.out += b"("
            for item in value:
                self.save(item)
            self.out += b"t"
            if value:  # (Python 2 memoizes no empty tuple)
                self.put()
        elif isinstance(value, list):
            self.out += b"(l"
            self.put()
            for item in value:
                self.save(item)
                self.out += b"a"
        else:
            raise TypeError(f"no protocol 0 writer for {type(value).__name__}")


def dumps_py2(value: Any) -> bytes:
    """Python 2's ``pickle.dumps(value)``: ``b"I16\\n."`` for 16,
    ``b"(I12\\nS'of'\\np0\\ntp1\\n."`` for ``(12, 'of')``."""
    writer = _Writer()
    writer.save(value)
    return bytes(writer.out) + b"."


def protocol0_count(n: int) -> bytes:
    """The reference's answer to REGISTER: ``b"I16\\n."``."""
    return dumps_py2(n)


def protocol0_item(seq: int, value: str) -> bytes:
    """The reference's answer to a position: ``b"(I12\\nS'of'\\np0\\ntp1\\n."``."""
    return dumps_py2((seq, value))


PROTOCOL0_BAD_REQUEST = dumps_py2("Bad request")
