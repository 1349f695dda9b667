"""The restricted pickle decoder: the only code that turns network bytes into values.

It reads pickle protocols 0 to 5 but builds nothing except ``None``, ``bool``, ``int``,
``float``, ``str``, ``bytes`` and tuples/lists of those. Every opcode that could look up
a global, call a callable or build an object is refused, as are dicts, sets, byte
arrays, out-of-band buffers, persistent ids and extension codes. Lengths and counts are
checked against the bytes actually present before anything is allocated, nesting is
bounded, and a shared reference to a container (the only way to make cycles or
exponential structures) is refused. Every refusal is a :class:`DecodeError` subclass;
nothing else escapes.

Python 2 byte strings (``S``, ``T``, ``U``) decode to ``str``: UTF-8, else latin-1.

Pure code: no I/O, no clock. :func:`decode_prefix` is the incremental entry point used by
the stream parsers; it returns :class:`NeedData` (as h11's ``NEED_DATA``) when the pickle
runs past the buffer: needing more bytes is the normal state of a stream, not an error.
"""

from __future__ import annotations

import struct
import warnings
from _codecs import escape_decode
from collections.abc import Callable
from typing import TypeAlias, final

from .errors import RemoteProtocolError

__all__ = [
    "DEFAULT_MAX_EXPANDED",
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_LONG_BYTES",
    "DecodeError",
    "Malformed",
    "NeedData",
    "RefusedCode",
    "RefusedType",
    "SharedReference",
    "TooDeep",
    "TooLarge",
    "Value",
    "decode",
    "decode_prefix",
    "describe",
    "py2_text",
]

Value: TypeAlias = "bool | int | float | str | bytes | tuple[Value, ...] | list[Value] | None"

#: Deepest nesting of tuples/lists accepted. Part 1 and Part 2 messages need 2.
MAX_DEPTH = 16
#: Longest decimal literal accepted (protocol 0 ``I``/``L``/``F``), in characters: what
#: Python formats by default (``sys.get_int_max_str_digits``).
MAX_DIGITS = 4300
#: Longest binary integer accepted (LONG1, LONG4), in bytes: the most that has at most
#: :data:`MAX_DIGITS` digits, so that every decoded int can be formatted.
MAX_LONG_BYTES = 1785
#: What a value may stand for written out in full (memo references counted as the bytes
#: they stand for) when :func:`decode` is given no size limit.
DEFAULT_MAX_EXPANDED = 1 << 20


class DecodeError(RemoteProtocolError, ValueError):
    """The bytes were refused. ``kind`` names the class of refusal."""

    kind = "refused"

    def __init__(self, detail: str, offset: int | None = None) -> None:
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{detail}{where}")
        self.detail = detail
        self.offset = offset


class RefusedCode(DecodeError):
    """An opcode that looks up a global or class, calls, builds, or uses ids/extensions."""

    kind = "code"


class RefusedType(DecodeError):
    """A value of a type outside the allowed set (dict, set, bytearray, buffer...)."""

    kind = "type"


class TooDeep(DecodeError):
    """Containers nested deeper than :data:`MAX_DEPTH`."""

    kind = "depth"


class TooLarge(DecodeError):
    """A length, count or literal larger than the bytes present or the allowed size."""

    kind = "size"


class SharedReference(DecodeError):
    """A second reference to a container (memo get or DUP of a tuple/list)."""

    kind = "shared"


class Malformed(DecodeError):
    """Not a well-formed pickle: unknown opcode, bad literal, stack misuse, truncation."""

    kind = "malformed"


@final
class NeedData:
    """What :func:`decode_prefix` returns when the pickle continues past the end of the
    buffer; ``needed`` is a lower bound on the number of bytes, counted from the
    pickle's start, before retrying is useful."""

    __slots__ = ("needed",)

    def __init__(self, needed: int) -> None:
        self.needed = needed

    def __repr__(self) -> str:
        return f"NeedData(needed={self.needed})"


class _Short(Exception):
    """Private to :func:`decode_prefix`: unwinds its helpers (a length or a line that
    runs past the buffer) to the one place that turns it into :class:`NeedData`."""

    def __init__(self, needed: int) -> None:
        self.needed = needed


_CODE_OPCODES = {
    ord("c"): "GLOBAL",
    0x93: "STACK_GLOBAL",
    ord("R"): "REDUCE",
    ord("b"): "BUILD",
    ord("i"): "INST",
    ord("o"): "OBJ",
    0x81: "NEWOBJ",
    0x92: "NEWOBJ_EX",
    ord("P"): "PERSID",
    ord("Q"): "BINPERSID",
    0x82: "EXT1",
    0x83: "EXT2",
    0x84: "EXT4",
}
_TYPE_OPCODES = {
    ord("}"): "EMPTY_DICT (dict)",
    ord("d"): "DICT (dict)",
    ord("s"): "SETITEM (dict)",
    ord("u"): "SETITEMS (dict)",
    0x8F: "EMPTY_SET (set)",
    0x90: "ADDITEMS (set)",
    0x91: "FROZENSET (frozenset)",
    0x96: "BYTEARRAY8 (bytearray)",
    0x97: "NEXT_BUFFER (out-of-band buffer)",
    0x98: "READONLY_BUFFER (out-of-band buffer)",
}

_UNPACK_I4 = struct.Struct("<i").unpack_from
_UNPACK_U4 = struct.Struct("<I").unpack_from
_UNPACK_U8 = struct.Struct("<Q").unpack_from
_UNPACK_U2 = struct.Struct("<H").unpack_from
_UNPACK_F8 = struct.Struct(">d").unpack_from


def py2_text(raw: bytes) -> str:
    """A Python 2 byte string as text: UTF-8 when valid, else latin-1 (never fails)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _unescape(quoted: bytes, at: int) -> bytes:
    """The bytes of a Python 2 string literal's body (``\\n``, ``\\xNN``, ``\\'``...).

    An escape Python does not know is refused rather than passed on as a warning.
    """
    if b"\\" not in quoted:
        return quoted
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return escape_decode(quoted)[0]
        except (ValueError, Warning):
            raise Malformed("bad escape in STRING", at) from None


def _written_size(v: Value) -> int:
    """About how many bytes a value that is not a container takes written out."""
    if isinstance(v, (str, bytes)):
        return len(v) + 1
    if isinstance(v, int):
        return v.bit_length() // 8 + 1
    return 1


def describe(value: Value, limit: int = 60) -> str:
    """``repr(value)``, cut to at most ``limit`` characters, and built no further: a
    decoded value, within its size limit, can still stand for megabytes of text."""
    out: list[str] = []
    room = limit + 1  # characters still wanted: stop once more than limit are written

    def put(text: str) -> None:
        nonlocal room
        out.append(text[:room])
        room -= len(text)

    def walk(v: Value) -> None:
        if isinstance(v, (tuple, list)):
            put("(" if isinstance(v, tuple) else "[")
            for k, item in enumerate(v):
                if room <= 0:
                    return
                if k:
                    put(", ")
                walk(item)
            put(
                ",)"
                if isinstance(v, tuple) and len(v) == 1
                else ")"
                if isinstance(v, tuple)
                else "]"
            )
        elif isinstance(v, (str, bytes)):
            put(repr(v[: max(room, 0)]) if len(v) > room else repr(v))
        else:
            put(repr(v))  # (an int has at most MAX_DIGITS digits: formatting is bounded)

    walk(value)
    text = "".join(out)
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def decode(data: bytes, *, max_size: int | None = None) -> Value:
    """Decode one whole pickle; trailing bytes after STOP are refused. ``max_size``
    bounds the pickle's length and what it stands for written out in full (without it:
    :data:`DEFAULT_MAX_EXPANDED`)."""
    if max_size is not None and len(data) > max_size:
        raise TooLarge(f"{len(data)} bytes is more than the limit of {max_size}")
    # One byte of slack: a pickle cut short (no STOP) needs data -> Malformed, while a
    # length that claims more than is present is still TooLarge.
    got = decode_prefix(
        data,
        0,
        max_size=len(data) + 1,
        max_expanded=DEFAULT_MAX_EXPANDED if max_size is None else max_size,
    )
    if isinstance(got, NeedData):
        raise Malformed("truncated pickle: a length or opcode runs past the end")
    value, end = got
    if end != len(data):
        raise Malformed("bytes after the end of the pickle", end)
    return value


def decode_prefix(
    buf: bytes,
    start: int = 0,
    *,
    max_size: int,
    max_expanded: int | None = None,
    unicode: Callable[[str], str] | None = None,
) -> tuple[Value, int] | NeedData:
    """Decode the pickle starting at ``buf[start]``; return ``(value, end)``, or
    :class:`NeedData` when the pickle is not all in ``buf`` yet.

    ``max_size`` bounds the pickle's length: a pickle that would be longer is refused
    with :class:`TooLarge`; one that is shorter but not all present returns
    :class:`NeedData`. ``max_expanded`` (default: ``max_size``) bounds what the value
    stands for written out in full, each memo reference counted as the bytes it stands
    for (:class:`TooLarge` beyond). ``unicode`` (a ``str`` subclass) marks the text of
    unicode opcodes apart from Python 2 byte strings (:mod:`.py2` needs to tell them).
    """
    expanded_limit = max_size if max_expanded is None else max_expanded
    limit = start + max_size
    n = len(buf)
    stack: list[Value] = []
    marks: list[int] = []
    memo: dict[int, Value] = {}
    depths: dict[int, int] = {}  # id(container) -> nesting depth
    pos = start
    # Bytes that second references (memo GET, DUP) stand for: a value written out in
    # full must fit the size limit too, or a few bytes of GETs could stand for
    # gigabytes once the value is described.
    shared = 0

    def need(count: int, at: int) -> int:
        """Return the end of ``count`` bytes from ``at``, or raise."""
        end = at + count
        if end > limit:
            raise TooLarge(f"length {count} runs past the size limit of {max_size}", at)
        if end > n:
            raise _Short(end - start)
        return end

    def line(at: int, max_len: int = 0) -> tuple[bytes, int]:
        """The text up to the next newline, and the position after it. With
        ``max_len``, a text already longer than that is refused without waiting."""
        nl = buf.find(b"\n", at, min(n, limit))
        if nl < 0:
            if max_len and min(n, limit) - at > max_len:
                raise TooLarge(f"literal longer than {max_len} characters", at)
            if n >= limit:
                raise TooLarge(f"text argument runs past the size limit of {max_size}", at)
            raise _Short(n - start + 1)
        return buf[at:nl], nl + 1

    def depth_of(v: Value) -> int:
        if isinstance(v, (tuple, list)):
            return depths.get(id(v), 1)
        return 0

    def make_tuple(items: list[Value], at: int) -> tuple[Value, ...]:
        d = 1 + max((depth_of(x) for x in items), default=0)
        if d > MAX_DEPTH:
            raise TooDeep(f"nesting deeper than {MAX_DEPTH}", at)
        t = tuple(items)
        if t:  # () is a shared singleton; its depth is always 1
            depths[id(t)] = d
        return t

    def extend_list(target: Value, items: list[Value], at: int) -> None:
        if not isinstance(target, list):
            raise Malformed("APPEND to something that is not a list", at)
        d = max(depths.get(id(target), 1), 1 + max((depth_of(x) for x in items), default=0))
        if d > MAX_DEPTH:
            raise TooDeep(f"nesting deeper than {MAX_DEPTH}", at)
        depths[id(target)] = d
        target.extend(items)

    def pop_mark(at: int) -> list[Value]:
        if not marks:
            raise Malformed("no MARK on the stack", at)
        m = marks.pop()
        items = stack[m:]
        del stack[m:]
        return items

    def pop(count: int, at: int) -> list[Value]:
        floor = marks[-1] if marks else 0
        if len(stack) - floor < count:
            raise Malformed("stack underflow", at)
        items = stack[len(stack) - count :]
        del stack[len(stack) - count :]
        return items

    def put(index: int, at: int) -> None:
        if not stack or (marks and marks[-1] == len(stack)):
            raise Malformed("memo PUT with an empty stack", at)
        memo[index] = stack[-1]

    def again(v: Value, at: int) -> None:
        """Count a second reference to ``v`` as the bytes it stands for."""
        nonlocal shared
        shared += _written_size(v)
        if pos - start + shared > expanded_limit:
            raise TooLarge(
                f"memo references stand for more than the size limit of {expanded_limit}", at
            )

    def get(index: int, at: int) -> None:
        if index not in memo:  # (an empty memo is refused before reading the index)
            raise Malformed(f"memo GET of unknown index {index}", at)
        v = memo[index]
        if isinstance(v, (tuple, list)) and v != ():
            raise SharedReference("second reference to a container", at)
        again(v, at)
        stack.append(v)

    def parse_int(text: bytes, at: int) -> int:
        if len(text) > MAX_DIGITS:
            raise TooLarge(f"integer literal longer than {MAX_DIGITS} digits", at)
        try:
            return int(text)
        except ValueError:
            raise Malformed(f"bad integer literal {text[:40]!r}", at) from None

    try:
        while True:
            if pos >= limit:
                raise TooLarge(f"pickle longer than the size limit of {max_size}", pos)
            if pos >= n:
                return NeedData(pos - start + 1)
            op = buf[pos]
            at = pos
            pos += 1
            if op == 0x2E:  # STOP '.'
                if marks or len(stack) != 1:
                    raise Malformed("STOP with an unbalanced stack", at)
                return stack[0], pos
            if op in _CODE_OPCODES:
                raise RefusedCode(f"refused opcode {_CODE_OPCODES[op]}", at)
            if op in _TYPE_OPCODES:
                raise RefusedType(f"refused opcode {_TYPE_OPCODES[op]}", at)
            if op == 0x80:  # PROTO
                end = need(1, pos)
                if buf[pos] > 5:
                    raise Malformed(f"unsupported pickle protocol {buf[pos]}", at)
                pos = end
            elif op == 0x95:  # FRAME: framing is only a hint; its length is still bounded
                end = need(8, pos)
                (flen,) = _UNPACK_U8(buf, pos)
                if end + flen > limit:
                    raise TooLarge(f"frame of {flen} bytes runs past the size limit", at)
                pos = end
            elif op == 0x28:  # MARK '('
                marks.append(len(stack))
            elif op == 0x4B:  # BININT1 'K'
                end = need(1, pos)
                stack.append(buf[pos])
                pos = end
            elif op == 0x4D:  # BININT2 'M'
                end = need(2, pos)
                stack.append(_UNPACK_U2(buf, pos)[0])
                pos = end
            elif op == 0x4A:  # BININT 'J'
                end = need(4, pos)
                stack.append(_UNPACK_I4(buf, pos)[0])
                pos = end
            elif op in (0x8A, 0x8B):  # LONG1, LONG4
                width = 1 if op == 0x8A else 4
                end = need(width, pos)
                size = buf[pos] if width == 1 else _UNPACK_I4(buf, pos)[0]
                if size < 0:
                    raise Malformed("negative LONG length", at)
                if size > MAX_LONG_BYTES:
                    raise TooLarge(
                        f"integer of {size} bytes is more than the limit of {MAX_LONG_BYTES}", at
                    )
                end2 = need(size, end)
                stack.append(int.from_bytes(buf[end:end2], "little", signed=True))
                pos = end2
            elif op == 0x49:  # INT 'I'
                text, pos = line(pos, MAX_DIGITS)
                if text == b"00":
                    stack.append(False)
                elif text == b"01":
                    stack.append(True)
                else:
                    stack.append(parse_int(text, at))
            elif op == 0x4C:  # LONG 'L'
                text, pos = line(pos, MAX_DIGITS + 1)
                stack.append(parse_int(text[:-1] if text.endswith(b"L") else text, at))
            elif op == 0x46:  # FLOAT 'F'
                text, pos = line(pos, MAX_DIGITS)
                if len(text) > MAX_DIGITS:
                    raise TooLarge("float literal too long", at)
                try:
                    stack.append(float(text))
                except ValueError:
                    raise Malformed(f"bad float literal {text[:40]!r}", at) from None
            elif op == 0x47:  # BINFLOAT 'G'
                end = need(8, pos)
                stack.append(_UNPACK_F8(buf, pos)[0])
                pos = end
            elif op == 0x4E:  # NONE 'N'
                stack.append(None)
            elif op == 0x88:  # NEWTRUE
                stack.append(True)
            elif op == 0x89:  # NEWFALSE
                stack.append(False)
            elif op == 0x53:  # STRING 'S' (Python 2 str, repr-quoted)
                text, pos = line(pos)
                if len(text) < 2 or text[0] != text[-1] or text[:1] not in (b"'", b'"'):
                    raise Malformed("STRING argument is not quoted", at)
                stack.append(py2_text(_unescape(text[1:-1], at)))
            elif op in (0x54, 0x55):  # BINSTRING 'T', SHORT_BINSTRING 'U' (Python 2 str)
                width = 4 if op == 0x54 else 1
                end = need(width, pos)
                size = _UNPACK_I4(buf, pos)[0] if width == 4 else buf[pos]
                if size < 0:
                    raise Malformed("negative string length", at)
                end2 = need(size, end)
                stack.append(py2_text(buf[end:end2]))
                pos = end2
            elif op == 0x56:  # UNICODE 'V'
                text, pos = line(pos)
                try:
                    decoded = text.decode("raw-unicode-escape")
                except UnicodeDecodeError:
                    raise Malformed("bad escape in UNICODE", at) from None
                stack.append(decoded if unicode is None else unicode(decoded))
            elif op in (0x58, 0x8C, 0x8D):  # BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
                width = {0x58: 4, 0x8C: 1, 0x8D: 8}[op]
                end = need(width, pos)
                size = (
                    _UNPACK_U4(buf, pos)[0]
                    if width == 4
                    else (buf[pos] if width == 1 else _UNPACK_U8(buf, pos)[0])
                )
                end2 = need(size, end)
                try:
                    decoded = buf[end:end2].decode("utf-8", "surrogatepass")
                except UnicodeDecodeError:
                    raise Malformed("string is not valid UTF-8", at) from None
                stack.append(decoded if unicode is None else unicode(decoded))
                pos = end2
            elif op in (0x43, 0x42, 0x8E):  # SHORT_BINBYTES, BINBYTES, BINBYTES8
                width = {0x43: 1, 0x42: 4, 0x8E: 8}[op]
                end = need(width, pos)
                size = (
                    buf[pos]
                    if width == 1
                    else (_UNPACK_U4(buf, pos)[0] if width == 4 else _UNPACK_U8(buf, pos)[0])
                )
                end2 = need(size, end)
                stack.append(bytes(buf[end:end2]))
                pos = end2
            elif op == 0x29:  # EMPTY_TUPLE ')'
                stack.append(())
            elif op == 0x74:  # TUPLE 't'
                stack.append(make_tuple(pop_mark(at), at))
            elif op in (0x85, 0x86, 0x87):  # TUPLE1..3
                stack.append(make_tuple(pop(op - 0x84, at), at))
            elif op == 0x5D:  # EMPTY_LIST ']'
                new: list[Value] = []
                depths[id(new)] = 1
                stack.append(new)
            elif op == 0x6C:  # LIST 'l'
                items = pop_mark(at)
                new = []
                depths[id(new)] = 1
                extend_list(new, items, at)
                stack.append(new)
            elif op == 0x61:  # APPEND 'a'
                (item,) = pop(1, at)
                if not stack or (marks and marks[-1] == len(stack)):
                    raise Malformed("APPEND with no list below", at)
                extend_list(stack[-1], [item], at)
            elif op == 0x65:  # APPENDS 'e'
                items = pop_mark(at)
                if not stack or (marks and marks[-1] == len(stack)):
                    raise Malformed("APPENDS with no list below", at)
                extend_list(stack[-1], items, at)
            elif op == 0x30:  # POP '0'
                if marks and marks[-1] == len(stack):
                    marks.pop()
                else:
                    pop(1, at)
            elif op == 0x31:  # POP_MARK '1'
                pop_mark(at)
            elif op == 0x32:  # DUP '2'
                (top,) = pop(1, at)
                if isinstance(top, (tuple, list)) and top != ():
                    raise SharedReference("DUP of a container", at)
                again(top, at)
                stack.extend((top, top))
            elif op == 0x70:  # PUT 'p'
                text, pos = line(pos, MAX_DIGITS)
                put(parse_int(text, at), at)
            elif op == 0x71:  # BINPUT 'q'
                end = need(1, pos)
                put(buf[pos], at)
                pos = end
            elif op == 0x72:  # LONG_BINPUT 'r'
                end = need(4, pos)
                put(_UNPACK_U4(buf, pos)[0], at)
                pos = end
            elif op == 0x94:  # MEMOIZE
                put(len(memo), at)
            elif op == 0x67:  # GET 'g'
                if not memo:
                    raise Malformed("memo GET before any PUT", at)
                text, pos = line(pos, MAX_DIGITS)
                get(parse_int(text, at), at)
            elif op == 0x68:  # BINGET 'h'
                if not memo:
                    raise Malformed("memo GET before any PUT", at)
                end = need(1, pos)
                get(buf[pos], at)
                pos = end
            elif op == 0x6A:  # LONG_BINGET 'j'
                if not memo:
                    raise Malformed("memo GET before any PUT", at)
                end = need(4, pos)
                get(_UNPACK_U4(buf, pos)[0], at)
                pos = end
            else:
                raise Malformed(f"unknown opcode 0x{op:02x}", at)
    except _Short as e:  # (a length or a line ran past the buffer)
        return NeedData(e.needed)
