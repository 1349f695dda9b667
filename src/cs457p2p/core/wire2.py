"""The Part 2 wire format, sans I/O: every message is one pickled tuple.

======================  =====================================  ===========================
from -> to              message                                answer
======================  =====================================  ===========================
peer -> tracker         ``('ECHO', handle)``                   ``('[Tracker]', 'Hi ...')``
peer -> tracker         ``('REGISTER', handle, listen_port)``  ``('REG_INIT', nbr_handle,
                                                               nbr_ip, nbr_port, N,
                                                               (seq, value))``
peer -> tracker (ours)  ``('QUERY', seq)``                     ``QUERY_RESULT``
peer -> tracker (ours)  ``('HELD', handle, count)``            ``('[Tracker]', 'OK')``
tracker -> peer         ``('UPDATE_NBR', handle, ip, port)``   none
tracker -> peer         ``('PING', stamp)``                    ``('PING', handle)`` (the
                                                               course's sample peer:
                                                               ``('ACK', handle)``)
peer -> its neighbour   ``('QUERY', seq)``                     ``('QUERY_RESULT', (seq,
                                                               value))``, or ``(None,
                                                               None)``
anything else           ``('[Tracker]', 'Bad request')``
======================  =====================================  ===========================

(docs/PROTOCOL.md says it in words.) ``QUERY`` to the tracker and ``HELD`` (how many
items a peer holds, for the tracker's dashboard) are this project's: our peers send
``HELD`` only to a tracker that has answered a ``QUERY``, i.e. to ours.

We write protocol 2 pickles (Python 2 reads them, our strings as ``unicode``); the
course's programs write protocol 0 with byte strings, which the restricted decoder
reads as ``str``. :func:`parse` checks a decoded value's shape and types and returns
the message, or a :class:`BadMessage` saying what is wrong.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .decoder import Value
from .wire import BAD_REQUEST_TEXT, encode

__all__ = [
    "MAX_HANDLE",
    "TRACKER_NAME",
    "BadMessage",
    "Echo",
    "Held",
    "Join",
    "Message",
    "Ping",
    "Pong",
    "Query",
    "QueryResult",
    "RegInit",
    "Said",
    "UpdateNbr",
    "address_problem",
    "as_pong",
    "bad_request",
    "encode_message",
    "handle_problem",
    "message_tuple",
    "parse",
    "port_problem",
    "welcome",
]

#: Longest handle, in characters.
MAX_HANDLE = 64
#: How the tracker signs what it says.
TRACKER_NAME = "[Tracker]"

Item = tuple[int, str]


@dataclass(frozen=True, slots=True)
class Echo:
    handle: str


@dataclass(frozen=True, slots=True)
class Join:
    """``('REGISTER', handle, port)``: a peer joins (or refreshes) the ring."""

    handle: str
    port: int


@dataclass(frozen=True, slots=True)
class Held:
    """``('HELD', handle, count)``: a peer tells our tracker how many items it holds."""

    handle: str
    count: int


@dataclass(frozen=True, slots=True)
class RegInit:
    """The tracker's answer to a join: the peer's neighbour (all None: none given), N,
    and the item it hosts (None when the database is empty)."""

    nbr_handle: str | None
    nbr_ip: str | None
    nbr_port: int | None
    n: int
    item: Item | None


@dataclass(frozen=True, slots=True)
class UpdateNbr:
    handle: str
    ip: str
    port: int


@dataclass(frozen=True, slots=True)
class Ping:
    stamp: str


@dataclass(frozen=True, slots=True)
class Pong:
    """A PING's answer: ``('PING', handle)``, or ``('ACK', handle)`` as the course's
    sample peer says it (``tag``)."""

    handle: str
    tag: str = "PING"


@dataclass(frozen=True, slots=True)
class Query:
    seq: int


@dataclass(frozen=True, slots=True)
class QueryResult:
    """``seq`` and ``value`` are both None when the asked peer does not hold it."""

    seq: int | None
    value: str | None


@dataclass(frozen=True, slots=True)
class Said:
    """``(name, text)``: what the tracker (``'[Tracker]'``) or a peer says in words:
    a welcome, ``'Bad request'``."""

    name: str
    text: str


@dataclass(frozen=True, slots=True)
class BadMessage:
    """A value that is no Part 2 message: why, in words."""

    reason: str


Message = Echo | Join | Held | RegInit | UpdateNbr | Ping | Pong | Query | QueryResult | Said


def welcome(handle: str) -> Said:
    """The tracker's answer to ECHO, word for word the course's."""
    return Said(TRACKER_NAME, f"Hi {handle}, Welcome to the network. Register to get started.")


def bad_request(name: str = TRACKER_NAME) -> Said:
    return Said(name, BAD_REQUEST_TEXT)


# ------------------------------------------------------------------------ encoding


#: Short QUERY_RESULTs kept, encoded (a ring repeats them: ``(None, None)``, the
#: answer for each SEQNUM): at most this many, each at most _SHORT bytes.
_RESULTS: dict[tuple[int | None, str | None], bytes] = {}
_RESULTS_MAX = 4096
_SHORT = 256


def encode_message(message: Message) -> bytes:
    """The pickle of ``message`` (protocol 2, which Python 2 reads)."""
    if type(message) is not QueryResult or type(message.seq) is bool:
        return encode(message_tuple(message))
    key = (message.seq, message.value)
    data = _RESULTS.get(key)
    if data is None:
        data = encode(message_tuple(message))
        if len(data) <= _SHORT:
            if len(_RESULTS) >= _RESULTS_MAX:
                _RESULTS.clear()
            _RESULTS[key] = data
    return data


def message_tuple(m: Message) -> tuple[Value, ...]:
    """``m`` as the tuple that is pickled."""
    if isinstance(m, Echo):
        return ("ECHO", m.handle)
    if isinstance(m, Join):
        return ("REGISTER", m.handle, m.port)
    if isinstance(m, Held):
        return ("HELD", m.handle, m.count)
    if isinstance(m, RegInit):
        return ("REG_INIT", m.nbr_handle, m.nbr_ip, m.nbr_port, m.n, m.item)
    if isinstance(m, UpdateNbr):
        return ("UPDATE_NBR", m.handle, m.ip, m.port)
    if isinstance(m, Ping):
        return ("PING", m.stamp)
    if isinstance(m, Pong):
        return (m.tag, m.handle)
    if isinstance(m, Query):
        return ("QUERY", m.seq)
    if isinstance(m, QueryResult):
        return ("QUERY_RESULT", (m.seq, m.value))
    return (m.name, m.text)


# ------------------------------------------------------------------------- parsing


def _text(v: Value) -> str | None:
    """A string field: ``str``, or ``bytes`` that are UTF-8 (a Python 3 peer's
    ``b'alice'``); None for anything else."""
    if isinstance(v, str):
        return v
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def _int(v: Value) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def handle_problem(handle: str) -> str | None:
    """Why ``handle`` cannot name a peer (None: it can): 1 to 64 printable characters."""
    if not handle:
        return "an empty handle"
    if len(handle) > MAX_HANDLE:
        return f"a handle over {MAX_HANDLE} characters"
    if not handle.isprintable():
        return "a handle with unprintable characters"
    return None


def port_problem(port: int) -> str | None:
    return None if 1 <= port <= 65535 else f"port {port} is not in 1..65535"


def address_problem(ip: str) -> str | None:
    """Why ``ip`` cannot be where a peer listens (None: it can): the trackers name a
    peer by the address its REGISTER came from, an IPv4 or IPv6 address."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return f"{ip[:40]!r} is not an IP address"
    if address.is_unspecified or address.is_multicast:
        return f"{ip} is not the address of a host"
    return None


def parse(value: Value) -> Message | BadMessage:
    """The message a decoded value is, or why it is none. Only shapes and types are
    checked here; whether a handle or a port is acceptable is the receiver's call
    (:func:`handle_problem`, :func:`port_problem`)."""
    if not isinstance(value, (tuple, list)) or not value:
        return BadMessage("not a tuple")
    tag = _text(value[0])
    if tag is None:
        return BadMessage("the first item is not text")
    args = value[1:]
    shape = _SHAPES.get(tag)
    if shape is None:
        if len(args) == 1 and _text(args[0]) is not None:
            return Said(tag, _text(args[0]) or "")  # ('[Tracker]', ...), ('ACK', handle)
        return BadMessage(f"unknown message {tag[:20]!r}")
    if len(args) != len(shape):
        return BadMessage(f"{tag} with {len(args)} fields, not {len(shape)}")
    return _build(tag, args)


_SHAPES = {
    "ECHO": ("handle",),
    "REGISTER": ("handle", "port"),
    "HELD": ("handle", "count"),
    "REG_INIT": ("handle", "ip", "port", "n", "item"),
    "UPDATE_NBR": ("handle", "ip", "port"),
    "PING": ("text",),
    "QUERY": ("seq",),
    "QUERY_RESULT": ("pair",),
}


def _build(tag: str, args: tuple[Value, ...] | list[Value]) -> Message | BadMessage:
    if tag == "ECHO":
        handle = _text(args[0])
        return BadMessage("ECHO: the handle is not text") if handle is None else Echo(handle)
    if tag == "REGISTER":
        handle, port = _text(args[0]), _int(args[1])
        if handle is None or port is None:
            return BadMessage("REGISTER: not (text, int)")
        return Join(handle, port)
    if tag == "HELD":
        handle, count = _text(args[0]), _int(args[1])
        if handle is None or count is None:
            return BadMessage("HELD: not (text, int)")
        return Held(handle, count)
    if tag == "UPDATE_NBR":
        handle, ip, port = _text(args[0]), _text(args[1]), _int(args[2])
        if handle is None or ip is None or port is None:
            return BadMessage("UPDATE_NBR: not (text, text, int)")
        return UpdateNbr(handle, ip, port)
    if tag == "PING":
        text = _text(args[0])
        if text is None:
            return BadMessage("PING: not text")
        return Ping(text)  # (a peer's answer ('PING', handle) reads the same: see Pong)
    if tag == "QUERY":
        seq = _int(args[0])
        return BadMessage("QUERY: the SEQNUM is not an int") if seq is None else Query(seq)
    if tag == "QUERY_RESULT":
        return _query_result(args[0])
    return _reg_init(args)


def _query_result(pair: Value) -> QueryResult | BadMessage:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        return BadMessage("QUERY_RESULT: not a pair")
    if pair[0] is None and pair[1] is None:
        return QueryResult(None, None)
    seq, value = _int(pair[0]), _text(pair[1])
    if seq is None or value is None:
        return BadMessage("QUERY_RESULT: not (int, text)")
    return QueryResult(seq, value)


def _reg_init(args: tuple[Value, ...] | list[Value]) -> RegInit | BadMessage:
    raw_handle, raw_ip, raw_port, raw_n, raw_item = args
    n = _int(raw_n)
    if n is None or n < 0:
        return BadMessage("REG_INIT: N is not an int >= 0")
    handle, ip, port = _text(raw_handle), _text(raw_ip), _int(raw_port)
    if raw_handle is None and raw_ip is None and raw_port is None:
        pass  # no neighbour given (the course's tracker, for a taken handle)
    elif handle is None or ip is None or port is None:
        return BadMessage("REG_INIT: the neighbour is not (text, text, int)")
    if raw_item is None:
        return RegInit(handle, ip, port, n, None)
    if not isinstance(raw_item, (tuple, list)) or len(raw_item) != 2:
        return BadMessage("REG_INIT: the item is not a pair")
    seq, value = _int(raw_item[0]), _text(raw_item[1])
    if seq is None or value is None:
        return BadMessage("REG_INIT: the item is not (int, text)")
    return RegInit(handle, ip, port, n, (seq, value))


def as_pong(message: Message) -> Pong | None:
    """A PING's answer, as whichever message it parsed as: ``('PING', handle)`` parses
    as a :class:`Ping` (the same shape as the tracker's PING), ``('ACK', handle)`` as a
    :class:`Said`."""
    if isinstance(message, Pong):
        return message
    if isinstance(message, Ping):
        return Pong(message.stamp, "PING")
    if isinstance(message, Said) and message.name == "ACK":
        return Pong(message.text, "ACK")
    return None
