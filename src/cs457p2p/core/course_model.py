"""The course's own programs as rules: what its Part 1 tracker (``tracker-p1.py``), its
Part 2 tracker (``p2p-tracker.py``) and its sample peer answer to one message, decided
with Python 2's pickle as :mod:`.py2` models it (never an unpickler). Pure: no sockets,
no clock; :mod:`cs457p2p.tracker.course` serves them over TCP as the course's programs
do (one connection at a time, one read of at most 1,024 bytes), and the checker plays
them to judge students by what the course's programs would do.

Where the course's program would stop serving for good (an exception escapes its loop)
or run code (``pickle.loads`` of a pickle that calls code), the model says so
(:attr:`CourseAnswer.fatal`, :attr:`CourseAnswer.note`) and refuses instead: it never
dies and never runs anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .decoder import Value
from .py2 import PY2_MAX, Py2Unicode, dumps_py2, loads_py2

__all__ = [
    "COURSE_P1_DB",
    "COURSE_P2_DB",
    "RECV_SIZE",
    "CourseAnswer",
    "CourseRing",
    "Peer",
    "SamplePeer",
    "address_of",
    "p1_answer",
    "ring_message",
]

#: Bytes each course program reads of a connection: one ``recv(1024)``.
RECV_SIZE = PY2_MAX
#: tracker-p1.py's database, as it stores it (position 0 first).
COURSE_P1_DB: tuple[tuple[int, str], ...] = (
    (12, "of"), (3, "time"), (9, "review"), (6, "good"), (2, "the"), (5, "all"),
    (11, "use"), (8, "to"), (1, "is"), (7, "coders"), (14, "in"), (15, "python."),
    (10, "the"), (0, "Now"), (4, "for"), (13, "threads"),
)  # fmt: skip
#: p2p-tracker.py's database, as it stores it.
COURSE_P2_DB: tuple[tuple[int, str], ...] = (
    (4, "peaks"), (2, "and"), (0, "blue"), (3, "snowy"), (1, "skies"),
)  # fmt: skip

_BAD_REQUEST_P1 = dumps_py2("Bad request")
_WELCOME = ", Welcome to the network. Register to get started."


@dataclass(frozen=True)
class CourseAnswer:
    """What a course program does with one message: the bytes it answers (None: no
    answer, the connection is closed), why it would stop serving for good (``fatal``),
    and what else is worth saying (``note``: it would have run code...)."""

    reply: bytes | None
    fatal: str = ""
    note: str = ""


def _index(value: Value) -> int | None:
    """The list index Python 2 makes of ``value`` (``db[value]``): an int or bool."""
    if isinstance(value, bool):
        return int(value)
    return value if isinstance(value, int) else None


def p1_answer(data: bytes, db: Sequence[tuple[int, str]] = COURSE_P1_DB) -> CourseAnswer:
    """tracker-p1.py's answer to ``data``, the first read of a connection: N to the raw
    bytes ``REGISTER``; ``db[i]`` to a pickle Python 2 reads as an index in range
    (``-N <= i < N``: negative indexing leaks through); ``'Bad request'`` to anything
    else (a protocol 3+ pickle, ASCII digits, a string...)."""
    if data == b"REGISTER":
        return CourseAnswer(dumps_py2(len(db)))
    read = loads_py2(data)
    if read.runs_code:
        note = f"{read.error}: the course's tracker would have run it"
        return CourseAnswer(_BAD_REQUEST_P1, note=note)
    i = _index(read.value) if read.ok else None
    if i is None or not -len(db) <= i < len(db):
        why = read.error if not read.ok else "not an index of the database"
        return CourseAnswer(_BAD_REQUEST_P1, note=why)
    return CourseAnswer(dumps_py2(db[i]))


#: (handle, ip, port) as p2p-tracker.py keeps them: the handle and port as the REGISTER
#: gave them, whatever their types
Peer = tuple[Value, str, Value]


def ring_message(data: bytes) -> tuple[Sequence[Value] | None, str]:
    """A Part 2 message as p2p-tracker.py reads it: ``(value, "")``, or ``(None, why)``
    when its ``pickle.loads`` or first indexing would raise (it then stops serving)."""
    read = loads_py2(data)
    if not read.ok:
        extra = ": it would have run it" if read.runs_code else ""
        return None, f"{read.error}{extra}"
    value = read.value
    if isinstance(value, (tuple, list, str, bytes)) and value:
        return value, ""
    return None, f"{type(value).__name__} {value!r:.40}: not a message it can index"


def address_of(peer: Peer) -> tuple[str, int] | None:
    """Where the tracker's ``connect((ip, port))`` to ``peer`` goes, or None where it
    raises (a port that is no int in range; the course's code then skips that peer)."""
    port = peer[2]
    if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
        return peer[1], port
    return None


@dataclass
class CourseRing:
    """p2p-tracker.py's ring: peers in registration order, a peer's neighbour its
    predecessor (a lone peer its own), the item at position ``index % N`` to host, a
    taken handle answered with no neighbour and the item handed out last, and after
    every registration an ``UPDATE_NBR`` to every peer while there are two or more."""

    db: Sequence[tuple[int, str]] = COURSE_P2_DB
    peers: list[Peer] = field(default_factory=list)
    last_item: tuple[int, str] | None = None

    def receive(self, data: bytes, ip: str) -> tuple[CourseAnswer, list[tuple[Peer, bytes]]]:
        """The answer to one connection's message from ``ip``, and the UPDATE_NBRs the
        tracker sends next (before it closes that connection: one at a time)."""
        message, why = ring_message(data)
        if message is None:
            return CourseAnswer(None, fatal=why), []
        tag = message[0]
        try:
            if tag == "REGISTER":
                return self._register(message, ip)
            if tag == "ECHO":
                handle = message[1]
                if not isinstance(handle, str):
                    return CourseAnswer(None, fatal="ECHO of a handle that is not text"), []
                text = "Hi " + handle + _WELCOME
                text = Py2Unicode(text) if isinstance(handle, Py2Unicode) else text
                return CourseAnswer(dumps_py2(("[Tracker]", text))), []
        except IndexError:
            return CourseAnswer(None, fatal=f"{tag!r:.20} with too few fields"), []
        return CourseAnswer(dumps_py2(("[Tracker]", "Bad request"))), []

    def _register(
        self, message: Sequence[Value], ip: str
    ) -> tuple[CourseAnswer, list[tuple[Peer, bytes]]]:
        handle, port = message[1], message[2]
        nbr: tuple[Value, Value, Value] = (None, None, None)
        if any(p[0] == handle for p in self.peers):
            item = self.last_item
            if item is None:  # (cannot happen: a taken handle was registered before)
                return CourseAnswer(None, fatal="NameError: dbitem"), []
        else:
            self.peers.append((handle, ip, port))
            index = len(self.peers) - 1
            nbr = self.peers[index - 1]
            item = self.last_item = self.db[index % len(self.db)]
        reply = dumps_py2(("REG_INIT", nbr[0], nbr[1], nbr[2], len(self.db), item))
        return CourseAnswer(reply), self.updates()

    def updates(self) -> list[tuple[Peer, bytes]]:
        """Every peer's ``UPDATE_NBR`` (its predecessor), while the ring holds two or
        more: what p2p-tracker.py sends after a registration and after a prune."""
        if len(self.peers) < 2:
            return []
        return [
            (p, dumps_py2(("UPDATE_NBR", *self.peers[i - 1])))
            for i, p in enumerate(self.peers)
            if address_of(p) is not None
        ]

    def prune(self, answered: Sequence[bool]) -> list[tuple[Peer, bytes]]:
        """After a round of PINGs (``answered[i]``: peer i answered anything or closed
        in time): the peers that did not are removed, and if any was, the UPDATE_NBRs."""
        kept = [p for p, ok in zip(self.peers, answered, strict=True) if ok]
        if len(kept) == len(self.peers):
            return []
        self.peers = kept
        return self.updates()


@dataclass
class SamplePeer:
    """The course's sample peer (``p2p-tracker-client.py``) as a neighbour: it answers
    PING with ``('ACK', handle)``, QUERY from its items (``(None, None)`` otherwise),
    takes UPDATE_NBR silently, and answers anything else with the raw bytes
    ``No data sent!``. An error in its server loop stops it for good."""

    handle: str
    items: dict[int, str] = field(default_factory=dict)
    neighbour: tuple[Value, ...] | None = None

    def receive(self, data: bytes) -> CourseAnswer:
        message, why = ring_message(data)
        if message is None:
            return CourseAnswer(None, fatal=why)
        tag = message[0]
        if tag == "UPDATE_NBR":
            if len(message) < 4:
                return CourseAnswer(None, fatal="UPDATE_NBR with too few fields")
            self.neighbour = tuple(message[1:4])
            return CourseAnswer(None)
        if tag == "PING":
            return CourseAnswer(dumps_py2(("ACK", self.handle)))
        if tag == "QUERY":
            key = message[1] if len(message) > 1 else None
            if isinstance(key, bool) or not isinstance(key, (int, float, str)):
                return CourseAnswer(None, fatal=f"int({key!r:.20}) raises")
            try:
                seq = int(key)
            except ValueError:
                return CourseAnswer(None, fatal=f"int({key!r:.20}) raises")
            value = self.items.get(seq)
            item = (None, None) if value is None else (seq, value)
            return CourseAnswer(dumps_py2(("QUERY_RESULT", item)))
        return CourseAnswer(b"No data sent!")
