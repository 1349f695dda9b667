"""Python 2's pickles, both ways, as the course's Python 2 programs see them.

Writing (by hand): what Python 2's ``pickle.dumps`` sends: protocol 0, byte strings
``S'...'`` (and ``V`` for text Python 2 holds as ``unicode``, :class:`Py2Unicode`), a
memo PUT after every string and non-empty tuple. tests/test_py2.py compares them byte
for byte with a real Python 2.7 where one is installed.

Reading (:func:`loads_py2`): what Python 2's ``pickle.loads`` would make of some bytes,
decided by the project's restricted decoder, never by an unpickler: Python 2 refuses
protocols 3 and newer (what Python 3 writes by default) and bytes that are no pickle
(ASCII digits among them); a pickle that calls code it would *run*, which is said and
refused here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .decoder import DecodeError, NeedData, RefusedCode, RefusedType, Value, decode_prefix

__all__ = [
    "PROTOCOL0_BAD_REQUEST",
    "Py2Read",
    "Py2Unicode",
    "dumps_py2",
    "loads_py2",
    "protocol0_count",
    "protocol0_item",
    "py2_repr",
]


class Py2Unicode(str):
    """Text that Python 2 holds as ``unicode`` (it came from a unicode opcode, as a
    Python 3 sender's strings do): Python 2's pickle writes it back with ``V``."""

    __slots__ = ()


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
        elif isinstance(value, Py2Unicode):
            text = value.replace("\\", "\\u005c").replace("\n", "\\u000a")
            self.out += b"V" + text.encode("raw-unicode-escape") + b"\n"
            self.put()
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


@dataclass(frozen=True)
class Py2Read:
    """What Python 2's ``pickle.loads`` makes of some bytes: ``value`` when ``ok``;
    otherwise ``error`` says why it fails (in Python 2's terms where it has them), and
    ``runs_code`` that it would not fail but run the code the pickle calls."""

    ok: bool
    value: Value = None
    error: str = ""
    runs_code: bool = False


#: Longest message the course's programs read (one ``recv(1024)``).
PY2_MAX = 1024


def loads_py2(data: bytes, max_size: int = PY2_MAX) -> Py2Read:
    """What Python 2's ``pickle.loads`` makes of ``data`` (bytes after the pickle's STOP are
    ignored, as there). Strings it would hold as ``unicode`` are :class:`Py2Unicode`."""
    if not data:
        return Py2Read(False, error="EOFError: nothing to unpickle")
    if data[0] == 0x80 and len(data) > 1 and data[1] > 2:
        return Py2Read(False, error=f"ValueError: unsupported pickle protocol: {data[1]}")
    try:
        got = decode_prefix(data, 0, max_size=max_size + 1, unicode=Py2Unicode)
    except RefusedCode as e:
        return Py2Read(False, error=f"a pickle that calls code ({e})", runs_code=True)
    except RefusedType as e:
        return Py2Read(False, error=f"a pickle of a type the checker does not build ({e})")
    except DecodeError as e:
        return Py2Read(False, error=f"not a pickle Python 2 reads ({e})")
    if isinstance(got, NeedData):
        return Py2Read(False, error="EOFError: the pickle ends before its STOP")
    return Py2Read(True, got[0])
