"""Why a request was refused, in words a student understands: ``sent the text 'hello',
not a pickle`` rather than the decoder's ``memo GET before any PUT at byte 0``. For the
dashboard's event feed and the ``why`` of the tracker's ``refused`` log lines.

:func:`explain` reads the refused bytes themselves (:attr:`BadRequest.data
<cs457p2p.core.requests.BadRequest.data>`) again with the restricted decoder, so the
words follow from what was sent, not from how the refusal was worded. Pure code: no
I/O, no clock.
"""

from __future__ import annotations

import re

from .decoder import DecodeError, NeedData, Value, decode_prefix, describe
from .requests import KEPT, got
from .wire import MAX_REQUEST, REGISTER

__all__ = ["MAX_WORDS", "explain", "out_of_range", "quote_text"]

#: Longest explanation, in characters.
MAX_WORDS = 160
#: Characters of a text shown in an explanation.
_SHOWN = 28
_HTTP = re.compile(rb"(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|CONNECT|TRACE) [!-~]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_SLOW = re.compile(r"request not complete within (\S+) s")
#: What a refused opcode's type is called in the decoder's detail: ``EMPTY_DICT (dict)``.
_TYPE = re.compile(r"\(([a-z -]+)\)")
_PROTOCOL = re.compile(r"unsupported pickle protocol (\d+)")
_CODE = re.compile(r"refused opcode (GLOBAL|STACK_GLOBAL|REDUCE|BUILD|INST|OBJ|NEWOBJ|PERSID|EXT)")
_LARGER = f"sent a request larger than the tracker reads ({MAX_REQUEST:,} bytes at most)"
_CODE_WORDS = "sent a pickle that would run code: refused, never run"


def _cut(text: str, limit: int = _SHOWN) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def quote_text(text: str, limit: int = _SHOWN) -> str:
    """``text`` quoted as a student would write it: trailing blanks and newlines dropped,
    other control characters escaped, at most ``limit`` characters."""
    text = text.rstrip(" \t\r\n")
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return "'" + _cut(shown, limit) + "'"


def _text(data: bytes) -> str | None:
    """``data`` as text if it reads as text (UTF-8, printable or blank), else None. A
    character cut at the end of the kept bytes does not count against it."""
    for cut in range(4):
        try:
            text = (data[: len(data) - cut] if cut else data).decode("utf-8")
        except UnicodeDecodeError:
            continue
        if text and all(c.isprintable() or c in "\t\r\n" for c in text):
            return text
        return None
    return None


def _bytes(data: bytes) -> str:
    shown = repr(data[:12])
    return shown + ("..." if len(data) > 12 else "")


def _global_name(data: bytes) -> str | None:
    """``module.name`` of a protocol 0 GLOBAL at the start of ``data`` (``cos\\nsystem\\n``:
    ``os.system``), or None if the text after the ``c`` is not two names."""
    lines = data[1:].split(b"\n", 2)
    if len(lines) < 3:
        return None
    try:
        module, name = lines[0].decode("ascii"), lines[1].decode("ascii")
    except UnicodeDecodeError:
        return None
    if _NAME.fullmatch(module) and _NAME.fullmatch(name):
        return f"{module}.{name}"
    return None


def _value(value: Value) -> str:
    """A pickle that decoded, to a value that is no request."""
    if isinstance(value, bool):
        return f"sent a pickled {value}, not a position (a whole number)"
    if isinstance(value, (str, bytes)):
        text = value if isinstance(value, str) else value.decode("latin-1")
        if text.strip().upper() == "REGISTER":
            return (
                f"sent a pickle of the text {quote_text(text)}: REGISTER is 8 capital"
                " letters, sent as they are"
            )
        if text.strip().isdigit():
            return (
                f"sent a pickle of the text {quote_text(text)}, not of the number"
                f" {_cut(text.strip(), 12)}: pickle the int"
            )
        return f"sent a pickle of the text {quote_text(text)}, not a position or REGISTER"
    if isinstance(value, float):
        return f"sent a pickled float {describe(value, 24)}, not a whole number"
    if value is None:
        return "sent a pickled None, not a position or REGISTER"
    kind = "tuple" if isinstance(value, tuple) else "list"
    return f"sent a pickled {kind} {describe(value, 24)}, not a position or REGISTER"


def _refused_pickle(data: bytes, e: DecodeError) -> str:
    """A pickle the decoder refused (``data`` is no text)."""
    if e.kind == "code":
        return _CODE_WORDS
    if e.kind == "type":
        return _type_words(e.detail)
    if e.kind == "depth":
        return "sent a pickle nested too deeply"
    if e.kind == "size":
        return _LARGER
    if e.kind == "shared":
        return "sent a pickle that refers to one container twice"
    m = _PROTOCOL.match(e.detail)
    if m:
        return f"sent a pickle of protocol {m[1]}: protocols 0 to 5 are read"
    if data[:1] == b"\x80":
        return f"sent a broken pickle ({_bytes(data)})"
    return f"sent bytes that are not a pickle ({_bytes(data)})"


def _type_words(detail: str) -> str:
    m = _TYPE.search(detail)
    return f"sent a pickle of a {m[1] if m else 'type'}: a request is a number or REGISTER"


def _long(data: bytes, reason: str) -> str:
    """A refused request longer than the bytes kept of it: said from its reason."""
    prefix = got(data) + ": "
    detail = reason[len(prefix) :] if reason.startswith(prefix) else reason
    if detail.startswith("a pickled "):
        return "sent " + detail
    if _CODE.search(detail):
        return _CODE_WORDS
    if _TYPE.search(detail):
        return _type_words(detail)
    if "size limit" in detail or "longer than" in detail:
        return _LARGER
    return f"sent a request of more than {KEPT} bytes that the tracker cannot read"


def explain(data: bytes, reason: str) -> str:
    """Why a request was refused, in words: ``data`` the refused bytes (the first ones),
    ``reason`` the refusal as the tracker recorded it (used only when ``data`` is
    empty, or as a last resort). One line, at most :data:`MAX_WORDS` characters."""
    return _cut(_explain(data, reason), MAX_WORDS)


def _explain(data: bytes, reason: str) -> str:
    if not data:
        return _without_data(reason)
    slow = _SLOW.search(reason)
    after = f", then nothing more for {slow[1]} s" if slow else ", then stopped"
    head = data[:8]
    if REGISTER.startswith(data):
        return f"sent {quote_text(data.decode('ascii'))}, the start of REGISTER" + after
    if head != REGISTER and head.upper() == REGISTER and len(head) == 8:
        return f"sent {quote_text(head.decode('ascii'))}: REGISTER is 8 capital letters"
    if _HTTP.match(data):
        line = data.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
        return (
            f"sent an HTTP request ({quote_text(line.decode('latin-1'), 20)}), a web browser?"
            " The tracker speaks pickles"
        )
    if data[:1].isdigit():
        digits = data[: len(data) - len(data.lstrip(b"0123456789"))] or data[:1]
        shown = quote_text(digits.decode("ascii"), 16)
        if len(digits) > 20:
            return f"sent ASCII digits {shown}: too long for a position"
        return f"sent ASCII digits {shown}" + after
    text = _text(data)
    try:
        got = decode_prefix(data, 0, max_size=MAX_REQUEST)
    except DecodeError as e:
        if e.kind == "code" and data[:1] == b"c":
            name = _global_name(data)
            if name is not None:
                calls = _cut(name, 40)
                return f"sent a pickle that would run code (it calls {calls}): refused, never run"
        if text is not None and (e.offset in (None, 0) or not text.rstrip().endswith(".")):
            return f"sent the text {quote_text(text)}, not a pickle"
        return _refused_pickle(data, e)
    if isinstance(got, NeedData):
        if len(data) >= KEPT and not slow:
            return _long(data, reason)
        if text is not None:  # ('I5' as much as 'pizza': both are no whole pickle)
            return f"sent {quote_text(text)}{after}: not a whole pickle"
        return f"sent the start of a pickle ({_bytes(data)})" + after
    return _value(got[0])


def _without_data(reason: str) -> str:
    slow = _SLOW.search(reason)
    if slow:
        return f"sent part of a request, then nothing more for {slow[1]} s"
    if reason == "empty datagram":
        return "sent an empty UDP datagram"
    return "was refused: " + reason


def out_of_range(first: int, last: int, n: int) -> str:
    """Positions ``first``..``last`` asked of a database of ``n`` items."""
    what = f"position {first:,}" if first == last else f"positions {first:,} to {last:,}"
    if n == 0:
        return f"asked for {what}, but the database is empty"
    return f"asked for {what}, but positions are 0 to {n - 1:,}"
