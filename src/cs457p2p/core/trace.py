"""What ``--trace`` shows, sans I/O: each message on the wire as one line, with its
direction, the other side's address, its bytes (escaped, cut) and what it is, read by
the restricted decoder (never unpickled).

One direction of a connection is cut into messages as the tracker reads them
(:class:`MessageSplitter`): the raw ``REGISTER``, pickles (they end at their STOP) and
ASCII digits; separators (space, tab, CR, LF) after a message belong to it. A message
that arrives in several reads is shown once, whole, with the read that completes it; a
digit run at the end of a read is taken as whole (as a single ``recv`` of the course's
tracker takes it). Bytes that are no message are shown as they are, with why; what
follows them on that connection is shown read by read, unsplit.

:func:`meaning` says what a message is (a position, N, an item, a Part 2 command and its
fields), in the words and field names of the Wireshark dissector shipped in
``cs457p2p/wireshark/``, whose tests use it as the reference.

The drivers hold a :class:`Tracer` only when ``--trace`` is given, and then call it with
the bytes they move; the lines go to the ``write`` they give it (stderr).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .addresses import format_address
from .decoder import DecodeError, NeedData, Value, decode_prefix, describe
from .wire import BAD_REQUEST_TEXT, MAX_ANSWER, REGISTER

__all__ = [
    "BYTES_SHOWN",
    "PART2_COMMANDS",
    "VALUE_SHOWN",
    "ConnectionTrace",
    "Meaning",
    "MessageSplitter",
    "Piece",
    "Tracer",
    "meaning",
    "peer_name",
    "split_datagram",
    "trace_line",
]

#: Bytes of a message shown on its line (then ``...`` and how many more).
BYTES_SHOWN = 48
#: Characters of a decoded value shown on its line.
VALUE_SHOWN = 80
#: The Part 2 messages by their first item (``('[Tracker]', text)`` replies aside).
PART2_COMMANDS = frozenset(
    {"ECHO", "REGISTER", "REG_INIT", "UPDATE_NBR", "PING", "ACK", "QUERY", "QUERY_RESULT", "HELD"}
)

_SEPARATORS = frozenset(b" \t\r\n")
_DIGITS = frozenset(b"0123456789")
_MAX_DIGITS = 20  # as the tracker's request parser: longer is no position
_TYPED = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}  # text a person types
_INT32 = range(-(2**31), 2**31)
#: Opcodes that import (GLOBAL, INST, STACK_GLOBAL, EXT1/2/4): a pickle runs code once
#: one is reached. The decoder refuses the first opcode that imports or calls, and a
#: call (REDUCE, BUILD, OBJ, NEWOBJ) before any import calls a plain value, which the
#: unpickler fails on: such bytes are malformed, not dangerous (b'No data sent!' is
#: NONE then OBJ).
_IMPORTS = frozenset({0x63, 0x69, 0x93, 0x82, 0x83, 0x84})


@dataclass(frozen=True, slots=True)
class Piece:
    """One message as it was cut from a stream, or bytes that are none.

    ``form``: ``raw`` (``REGISTER``), ``digits`` (an ASCII position), ``pickle``;
    ``bad`` (no message: ``reason`` says why; ``code`` when the pickle would run code);
    ``cut`` (the stream ended inside a message); ``after`` (bytes that follow a ``bad``
    piece on its connection, unread); ``space`` (separators alone)."""

    raw: bytes
    form: str
    value: Value = None
    #: the pickle's PROTO (None: protocols 0 and 1 have none)
    protocol: int | None = None
    reason: str = ""
    code: bool = False

    @property
    def is_message(self) -> bool:
        return self.form in ("raw", "digits", "pickle")


def _text_of(v: Value) -> str | None:
    """Text for a field (a surrogate, which a pickle may hold, as U+FFFD)."""
    if isinstance(v, bytes):
        try:
            v = v.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(v, str):
        return None
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) < 0xE000 else c for c in v)
    return v


def _int_of(v: Value) -> int | None:
    """An int that fits the dissector's 32-bit fields (bools are not ints here)."""
    if isinstance(v, int) and not isinstance(v, bool) and v in _INT32:
        return v
    return None


@dataclass(frozen=True, slots=True)
class Meaning:
    """What a message is. ``kind``: ``register``, ``position``, ``count`` (N), ``item``,
    ``bad_request``, ``part2``, ``other`` (a value no message is), or for what is no
    message ``text``, ``malformed``, ``space``. ``fields``: the dissector's fields
    (``command``, ``seqnum``, ``value``, ``n``, ``position``, ``handle``, ``ip``, ``port``,
    ``stamp``, ``count``, ``sender``, ``text``) with their values."""

    kind: str
    summary: str
    part: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)


def meaning(piece: Piece, request: bool) -> Meaning:
    """What ``piece`` is, sent as a request (by the side that spoke first on its
    connection) or as an answer."""
    if piece.code:
        return Meaning("dangerous", f"DANGEROUS, would run code if unpickled: {piece.reason}")
    if piece.form in ("bad", "cut", "after"):
        if piece.form == "cut":
            why = "cut short: the connection ended inside it"
        elif piece.form == "after":
            why = "after bytes that are no message: not read"
        else:
            why = piece.reason
        if piece.raw and all(b in _TYPED for b in piece.raw.lstrip(b" \t\r\n")):
            shown = describe(piece.raw.decode("ascii").strip(), 60)
            return Meaning("text", f"text {shown}, not a pickle ({why})")
        return Meaning("malformed", f"no message: {why}")
    if piece.form == "space":
        return Meaning("space", "separators only")
    v = piece.value
    fields: dict[str, Any] = {}

    def add(name: str, x: Any) -> None:
        if x is not None:
            fields[name] = x

    if isinstance(v, (tuple, list)) and v:
        tag = _text_of(v[0])
        if tag is not None:
            a = list(v) + [None] * 6  # (fields that are not there: None, not added)
            add("command", tag)
            if tag in ("ECHO", "ACK"):
                add("handle", _text_of(a[1]))
            elif tag == "REGISTER":
                add("handle", _text_of(a[1]))
                add("port", _int_of(a[2]))
            elif tag == "HELD":
                add("handle", _text_of(a[1]))
                add("count", _int_of(a[2]))
            elif tag in ("REG_INIT", "UPDATE_NBR"):
                add("handle", _text_of(a[1]))
                add("ip", _text_of(a[2]))
                add("port", _int_of(a[3]))
                if tag == "REG_INIT":
                    add("n", _int_of(a[4]))
                    if isinstance(a[5], (tuple, list)):
                        add("seqnum", _int_of(a[5][0]) if a[5] else None)
                        add("value", _text_of(a[5][1]) if len(a[5]) > 1 else None)
            elif tag == "PING":
                add("stamp" if request else "handle", _text_of(a[1]))
            elif tag == "QUERY":
                add("seqnum", _int_of(a[1]))
            elif tag == "QUERY_RESULT":
                if isinstance(a[1], (tuple, list)):
                    add("seqnum", _int_of(a[1][0]) if a[1] else None)
                    add("value", _text_of(a[1][1]) if len(a[1]) > 1 else None)
            elif len(v) == 2 and _text_of(v[1]) is not None:
                add("sender", tag)
                add("text", _text_of(v[1]))
            said = len(v) == 2 and _text_of(v[1]) is not None
            kind = "part2" if tag in PART2_COMMANDS or said else "other"
            return Meaning(kind, describe(v, VALUE_SHOWN), 2, fields)
        if not request and len(v) == 2 and _int_of(v[0]) is not None and _text_of(v[1]):
            fields = {"seqnum": v[0], "value": _text_of(v[1])}
            return Meaning("item", f"item {describe(v, VALUE_SHOWN)}", 1, fields)
    if isinstance(v, int) and not isinstance(v, bool):
        if request:
            add("position", _int_of(v))
            return Meaning("position", f"position {v}", 1, fields)
        add("n", _int_of(v))
        return Meaning("count", f"N = {v}", 1, fields)
    text = _text_of(v)
    if request and text == "REGISTER":
        return Meaning("register", "REGISTER", 1, {"command": "REGISTER"})
    if not request and text == BAD_REQUEST_TEXT:
        return Meaning("bad_request", repr(BAD_REQUEST_TEXT), 1, {"text": text})
    return Meaning("other", describe(v, VALUE_SHOWN))


# --------------------------------------------------------------------- splitting


class MessageSplitter:
    """Cuts one direction of a connection into :class:`Piece` s, however it is read."""

    __slots__ = ("_broken", "_buf")

    def __init__(self) -> None:
        self._buf = b""
        self._broken = False

    def feed(self, data: bytes) -> list[Piece]:
        """Add what one read brought; return the pieces it completes."""
        if not data:
            return []
        if self._broken:
            return [Piece(bytes(data), "after")]
        self._buf = self._buf + bytes(data) if self._buf else bytes(data)
        return self._split(final=False)

    def end(self) -> list[Piece]:
        """The connection ended: what was held back (a message cut short)."""
        if self._broken or not self._buf:
            return []
        return self._split(final=True)

    def _split(self, final: bool) -> list[Piece]:
        buf = self._buf
        n = len(buf)
        pos = 0
        out: list[Piece] = []
        while pos < n:
            start = pos
            while pos < n and buf[pos] in _SEPARATORS:
                pos += 1
            if pos == n:
                if final:
                    out.append(Piece(buf[start:], "space"))
                    start = n
                pos = start  # (they lead the next message)
                break
            piece, end = self._one(buf, start, pos, final)
            if piece is None:  # runs past what has arrived
                pos = start
                break
            out.append(piece)
            pos = end
            if piece.form == "bad":
                self._broken = True
                break
        self._buf = buf[pos:]
        if final and self._buf:
            out.append(Piece(self._buf, "cut"))
            self._buf = b""
        return out

    @staticmethod
    def _one(buf: bytes, start: int, pos: int, final: bool) -> tuple[Piece | None, int]:
        """The piece that starts at ``buf[start]`` (its first byte that is no separator
        at ``pos``) and where it ends; ``(None, start)`` if it is not all there yet."""
        n = len(buf)
        first = buf[pos]
        if first == 0x52 and REGISTER.startswith(buf[pos : pos + 8]):  # 'R'
            if buf[pos : pos + 8] != REGISTER:
                return None, start
            return _with_separators(buf, start, pos + 8, "raw", "REGISTER")
        if first in _DIGITS:
            end = pos + 1
            while end < n and buf[end] in _DIGITS:
                end += 1
            if end - pos <= _MAX_DIGITS:
                return _with_separators(buf, start, end, "digits", int(buf[pos:end]))
            return Piece(buf[start:], "bad", reason="an ASCII position of more than 20 digits"), n
        try:
            got = decode_prefix(buf, pos, max_size=MAX_ANSWER)
        except DecodeError as e:
            code = e.kind == "code" and e.offset is not None and buf[e.offset] in _IMPORTS
            return Piece(buf[start:], "bad", reason=str(e), code=code), n
        if isinstance(got, NeedData):
            if final:
                return Piece(buf[start:], "cut"), n
            return None, start
        value, end = got
        protocol = buf[pos + 1] if first == 0x80 else None
        return _with_separators(buf, start, end, "pickle", value, protocol)


def _with_separators(
    buf: bytes, start: int, end: int, form: str, value: Value, protocol: int | None = None
) -> tuple[Piece, int]:
    while end < len(buf) and buf[end] in _SEPARATORS:
        end += 1
    return Piece(buf[start:end], form, value, protocol), end


def split_datagram(data: bytes) -> list[Piece]:
    """The pieces of one datagram (a whole message or several; nothing is held)."""
    splitter = MessageSplitter()
    return splitter.feed(data) + splitter.end()


# ------------------------------------------------------------------------ lines


def _shown(raw: bytes) -> str:
    """The bytes, escaped, cut after BYTES_SHOWN; separators that pad a message (a UDP
    request buys room for its answers with spaces) said as a count."""
    body = raw.rstrip(b" \t\r\n")
    padding = len(raw) - len(body)
    if padding <= 2:
        body, padding = raw, 0
    shown = (
        repr(body)
        if len(body) <= BYTES_SHOWN
        else (f"{body[:BYTES_SHOWN]!r}...(+{len(body) - BYTES_SHOWN} B)")
    )
    return f"{shown} + {padding} B of padding" if padding else shown


def _encoding(piece: Piece) -> str:
    if piece.form == "raw":
        return "raw bytes"
    if piece.form == "digits":
        return "ASCII digits"
    if piece.protocol is None:
        return "pickle protocol 0 or 1"
    return f"pickle protocol {piece.protocol}"


def trace_line(sent: bool, transport: str, peer: str, piece: Piece, request: bool) -> str:
    """One line: ``trace -> tcp 127.0.0.1:7777 5 B b'\\x80\\x02K\\x05.': position 5
    [pickle protocol 2]`` (``->`` sent, ``<-`` received)."""
    arrow = "->" if sent else "<-"
    what = meaning(piece, request)
    said = f"{what.summary} [{_encoding(piece)}]" if piece.is_message else what.summary
    return f"trace {arrow} {transport} {peer} {len(piece.raw)} B {_shown(piece.raw)}: {said}"


def peer_name(address: Any) -> str:
    """An address as a socket gives it (``(host, port, ...)``) as ``HOST:PORT``."""
    if isinstance(address, (tuple, list)) and len(address) >= 2:
        return format_address(str(address[0]), int(address[1]))
    return str(address)


# ------------------------------------------------------------------------ tracer


class ConnectionTrace:
    """The trace of one TCP connection: call :meth:`sent` and :meth:`received` with
    the bytes as they are written and read, :meth:`closed` once it ends."""

    __slots__ = ("_in", "_out", "initiated", "peer", "write")

    def __init__(self, write: Callable[[str], None], peer: str, initiated: bool) -> None:
        self.write = write
        self.peer = peer
        #: this side connected (so it speaks first: what it sends are requests)
        self.initiated = initiated
        self._out = MessageSplitter()
        self._in = MessageSplitter()

    def sent(self, data: bytes | memoryview) -> None:
        for piece in self._out.feed(bytes(data)):
            self.write(trace_line(True, "tcp", self.peer, piece, self.initiated))

    def received(self, data: bytes) -> None:
        for piece in self._in.feed(data):
            self.write(trace_line(False, "tcp", self.peer, piece, not self.initiated))

    def closed(self) -> None:
        """The connection ended: say what was cut short (once; later calls do nothing)."""
        for piece in self._out.end():
            self.write(trace_line(True, "tcp", self.peer, piece, self.initiated))
        for piece in self._in.end():
            self.write(trace_line(False, "tcp", self.peer, piece, not self.initiated))


class Tracer:
    """``--trace``: hands a line per message to ``write`` (which must take whole lines
    from several threads: the drivers give one that writes a line at once)."""

    __slots__ = ("write",)

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write

    def connection(self, peer: str, initiated: bool) -> ConnectionTrace:
        """The trace of a new TCP connection to (or from) ``peer``."""
        return ConnectionTrace(self.write, peer, initiated)

    def datagram(self, peer: str, data: bytes, sent: bool, request: bool) -> None:
        """One UDP datagram, sent or received; ``request``: it carries requests."""
        for piece in split_datagram(data):
            self.write(trace_line(sent, "udp", peer, piece, request))
