"""The tracker's ring (Part 2), sans I/O: who is in it, in what order, who hosts what,
who must be told of a new neighbour, and whom to ping. The tracker's driver
(:mod:`cs457p2p.tracker.ring_keeper`) sends what :attr:`Ring.outbox` holds and the
PINGs, and reports back; time is passed in.

As the course's tracker keeps it: peers in registration order, each one's neighbour its
predecessor (the first peer's, the last), a lone peer its own neighbour; the neighbour's
address is the one its REGISTER came from, with the port it sent; each peer hosts the
item at position ``index % N`` of the database. Unlike it:

* only the peers whose neighbour changed are told (``UPDATE_NBR``): one per join,
  one per departure, where the course's tracker tells every peer every time;
* a peer's position, once it leaves, goes to the next peer that joins (the course's
  tracker hands out ``len(peers) % N`` again, and an item goes unhosted);
* the same handle from the same address and port is a refresh; from the same address
  with another port it is refused until the port it registered stops answering (the
  ring asks its driver to PING it at once: :attr:`Ring.checks`), so that a program on
  the same host can neither take over a live peer's handle nor get it pruned by naming
  a closed port; from another address it is refused, as are bad handles and ports, a
  full ring, more than ``per_address`` peers from one address and more than one
  REGISTER on one connection (one connection or one host cannot fill the ring);
* ``QUERY`` to the tracker is answered from the database, so a peer can complete a ring
  smaller than the database; ``HELD`` (our peers say how many items they hold) is kept
  for the dashboard.

What happens to the ring (a join, a refresh, a prune, a peer that holds every item, a
refused message and why, in words) is told to :attr:`Ring.listener` as a
:class:`RingEvent`, when one is set (the tracker's monitor: its logs and the dashboard's
event feed).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .wire2 import (
    TRACKER_NAME,
    BadMessage,
    Echo,
    Held,
    Join,
    Message,
    Query,
    QueryResult,
    RegInit,
    Said,
    UpdateNbr,
    bad_request,
    handle_problem,
    message_tuple,
    port_problem,
    welcome,
)

__all__ = [
    "MAX_PEERS",
    "PEERS_PER_ADDRESS",
    "REGISTERS_PER_CONNECTION",
    "RING_DEFAULTS",
    "Catalogue",
    "Member",
    "Notice",
    "Ring",
    "RingCounters",
    "RingEvent",
    "RingSettings",
    "bad_message_words",
]


@dataclass(frozen=True, kw_only=True)
class RingSettings:
    """The ring's settings, each default written here only (the tracker's config and
    its command line read them)."""

    #: peers in a ring, at most
    max_peers: int = 1024
    #: peers registered from one address, at most: a host runs a few peers, not a
    #: thousand. 64 leaves room for a student's ring on one machine and for ``check
    #: tracker --part 2``, which plays up to 34 peers from one address against a remote
    #: tracker; one address then holds at most 1/16 of a full ring.
    per_address: int = 64
    #: REGISTERs one connection may send (the course's peers send one message a
    #: connection; so do ours and the checker's)
    per_connection: int = 1
    #: seconds between two rounds of PINGs (the course's tracker: 20), and the wait for
    #: each answer
    ping_interval: float = 20.0
    ping_timeout: float = 5.0


RING_DEFAULTS = RingSettings()
MAX_PEERS = RING_DEFAULTS.max_peers
PEERS_PER_ADDRESS = RING_DEFAULTS.per_address
REGISTERS_PER_CONNECTION = RING_DEFAULTS.per_connection

Item = tuple[int, str]


class Catalogue(Protocol):
    """What the ring needs of the database (:class:`~cs457p2p.core.database.Database`
    is one): its size, the item at a position, the VALUE of a SEQNUM."""

    def __len__(self) -> int: ...
    def item(self, position: int) -> Item: ...
    def value_of(self, seq: int) -> str | None: ...


@dataclass(eq=False)
class Member:
    handle: str
    ip: str
    port: int
    #: the database position whose item it hosts (None: the database is empty)
    position: int | None
    joined: float
    last_seen: float
    #: items it holds, as it said (``HELD``: our peers; None: not said)
    held: int | None = None
    pings: int = 0
    last_ping: float | None = None
    last_ping_ok: bool | None = None
    #: the peers before and after it in registration order (None at either end)
    prev: Member | None = field(default=None, repr=False)
    next: Member | None = field(default=None, repr=False)

    @property
    def address(self) -> tuple[str, int]:
        return (self.ip, self.port)


@dataclass(frozen=True, slots=True)
class Notice:
    """A message for the driver to send to ``to`` (one connection, one message)."""

    to: tuple[str, int]
    handle: str
    message: UpdateNbr


@dataclass(frozen=True, slots=True)
class RingEvent:
    """Something that happened to the ring. ``kind``: ``join``, ``refresh`` (the same
    handle from the same address again), ``prune`` (it did not answer a PING),
    ``peer_finished`` (it says it holds every item) or ``refused`` (a message refused:
    ``ip`` the sender's, ``handle`` the one it gave, if any)."""

    kind: str
    handle: str
    ip: str
    #: the port the peer listens on (0: not known, for a refusal)
    port: int = 0
    #: who it asks now (``join``, ``refresh``)
    neighbour: str = ""
    #: the item it hosts (``join``)
    hosts: Item | None = None
    #: peers in the ring after it
    peers: int = 0
    #: why, in words (``prune``, ``refused``)
    why: str = ""

    @property
    def address(self) -> str:
        return _address_text(self.ip, self.port) if self.port else self.ip


@dataclass
class RingCounters:
    joins: int = 0
    refreshes: int = 0
    refused: int = 0
    neighbour_updates: int = 0
    pruned: int = 0
    pings: dict[str, int] = field(default_factory=lambda: {"ok": 0, "failed": 0})
    queries: int = 0


class Ring:
    """The ring over a database (its items, position by position). Peers are linked in
    registration order, so a join, a departure and a neighbour cost the same however
    many peers there are (the simulator runs 100,000)."""

    def __init__(
        self,
        db: Catalogue,
        max_peers: int = MAX_PEERS,
        per_address: int = PEERS_PER_ADDRESS,
        per_connection: int = REGISTERS_PER_CONNECTION,
    ) -> None:
        self.db = db
        self.n = len(db)
        self.max_peers = max_peers
        self.per_address = per_address
        self.per_connection = per_connection
        #: peers in the ring from each address
        self._from: dict[str, int] = {}
        self._first: Member | None = None
        self._last: Member | None = None
        self._size = 0
        #: peers hosting each position; positions no one hosts since one left (a heap,
        #: checked against the counts when taken); positions never handed out start here
        self._hosts: dict[int, int] = {}
        self._freed: list[int] = []
        self._fresh = 0
        self._by_handle: dict[str, Member] = {}
        #: what the driver must send, oldest first (it takes and clears it)
        self.outbox: list[Notice] = []
        #: peers the driver must PING now (their handles; it takes and clears them): a
        #: REGISTER of theirs came from their address with another port
        self.checks: list[str] = []
        self.counters = RingCounters()
        #: told of every :class:`RingEvent` (None: nobody listens)
        self.listener: Callable[[RingEvent], None] | None = None

    # --------------------------------------------------------------------- reading

    def __len__(self) -> int:
        return self._size

    @property
    def members(self) -> list[Member]:
        """The peers in ring (registration) order, a new list."""
        out = []
        m = self._first
        while m is not None:
            out.append(m)
            m = m.next
        return out

    def neighbour(self, member: Member) -> Member:
        """``member``'s predecessor (the first's is the last; itself when alone)."""
        prev = member.prev if member.prev is not None else self._last
        assert prev is not None
        return prev

    def member(self, handle: str) -> Member | None:
        return self._by_handle.get(handle)

    @property
    def unhosted(self) -> int:
        """Items of the database that no peer in the ring hosts."""
        return self.n - sum(1 for count in self._hosts.values() if count)

    def hosted(self, member: Member) -> Item | None:
        return None if member.position is None else self.db.item(member.position)

    def status(self, now: float) -> dict[str, Any]:
        """The ring as the dashboard and ``/api/ring`` show it: peers in ring order."""
        peers = []
        members = self.members
        for k, member in enumerate(members):
            nbr = members[k - 1]
            hosted = self.hosted(member)
            peers.append(
                {
                    "handle": member.handle,
                    "address": _address_text(member.ip, member.port),
                    "neighbour": nbr.handle,
                    "hosted": list(hosted) if hosted is not None else None,
                    "held": member.held,
                    "joined_ago": round(now - member.joined, 3),
                    "last_ping_ago": (
                        None if member.last_ping is None else round(now - member.last_ping, 3)
                    ),
                    "last_ping_ok": member.last_ping_ok,
                }
            )
        c = self.counters
        return {
            "n": self.n,
            "size": self._size,
            "max_peers": self.max_peers,
            "per_address": self.per_address,
            "peers": peers,
            "counters": {
                "joins": c.joins,
                "refreshes": c.refreshes,
                "refused": c.refused,
                "neighbour_updates": c.neighbour_updates,
                "pruned": c.pruned,
                "pings": dict(c.pings),
                "queries": c.queries,
            },
        }

    # ------------------------------------------------------------------- messages

    def answer(
        self, message: Message | BadMessage, ip: str, now: float, registers: int = 0
    ) -> Message:
        """The answer to one message from ``ip`` (what was sent on to others is in
        :attr:`outbox`); ``registers``: the REGISTERs its connection sent before it."""
        if isinstance(message, Echo):
            return welcome(message.handle)
        if isinstance(message, Join):
            if registers >= self.per_connection:
                why = (
                    f"asked to join as {_quote(message.handle)} in REGISTER"
                    f" {registers + 1:,} of one connection: {self.per_connection:,} a"
                    " connection"
                )
                self._refuse(message.handle, ip, why)
                return bad_request()
            return self.join(message.handle, ip, message.port, now)
        if isinstance(message, Held):
            return self._held(message, ip, now)
        if isinstance(message, Query):
            self.counters.queries += 1
            value = self.db.value_of(message.seq)
            return QueryResult(None, None) if value is None else QueryResult(message.seq, value)
        if isinstance(message, BadMessage):
            why = bad_message_words(message.reason)
        else:
            why = f"sent {_quote(str(message_tuple(message)[0]))}, which the tracker does not take"
        self._refuse("", ip, why)
        return bad_request()

    def _held(self, message: Held, ip: str, now: float) -> Said:
        member = self._by_handle.get(message.handle)
        if member is None or member.ip != ip or not 0 <= message.count <= self.n:
            said = f"said {_quote(message.handle)} holds {message.count:,} items"
            if member is None:
                why = f"{said}, but no peer of that name is in the ring"
            elif member.ip != ip:
                why = f"{said}, but that peer is at {member.ip}"
            else:
                why = f"{said}, of {self.n:,}"
            self._refuse(message.handle, ip, why)
            return bad_request()
        before, member.held = member.held, message.count
        member.last_seen = now
        if message.count == self.n and before != self.n and self.listener is not None:
            self.listener(
                RingEvent("peer_finished", member.handle, member.ip, member.port, peers=self._size)
            )
        return Said(TRACKER_NAME, "OK")

    def _refuse(self, handle: str, ip: str, why: str) -> None:
        self.counters.refused += 1
        if self.listener is not None:
            self.listener(RingEvent("refused", handle, ip, peers=self._size, why=why))

    def join(self, handle: str, ip: str, port: int, now: float) -> RegInit | Said:
        """``('REGISTER', handle, port)`` from ``ip``."""
        asked = f"asked to join as {_quote(handle)}"
        problem = handle_problem(handle) or port_problem(port)
        if problem:
            self._refuse(handle, ip, f"{asked}: {problem}")
            return bad_request()
        known = self._by_handle.get(handle)
        if known is not None:
            if known.ip != ip:  # someone else's handle
                self._refuse(handle, ip, f"{asked}, a handle {known.ip} holds")
                return bad_request()
            if known.port != port:
                # Another program of that host, or the peer restarted on a new port: the
                # old port is PINGed now; if it does not answer, it leaves the ring and
                # the next REGISTER joins.
                self.checks.append(handle)
                why = (
                    f"{asked} with port {port}, but that handle listens on port"
                    f" {known.port} of this address: taken only once that port stops"
                    " answering (it is PINGed now)"
                )
                self._refuse(handle, ip, why)
                return bad_request()
            self.counters.refreshes += 1
            known.last_seen = now
            if self.listener is not None:
                self.listener(self._event("refresh", known))
            return self._reg_init(known)
        if self._size >= self.max_peers:
            self._refuse(handle, ip, f"{asked}, but the ring is full ({self.max_peers:,})")
            return bad_request()
        mine = self._from.get(ip, 0)
        if mine >= self.per_address:
            why = f"{asked}, but {ip} has {mine:,} peers in the ring, the most one address may"
            self._refuse(handle, ip, why)
            return bad_request()
        member = Member(handle, ip, port, self._take_position(), now, now)
        if self._last is None:
            self._first = member
        else:
            self._last.next = member
            member.prev = self._last
        self._last = member
        self._size += 1
        self._from[ip] = mine + 1
        self._by_handle[handle] = member
        self.counters.joins += 1
        if self._size > 1:
            assert self._first is not None
            self._tell(self._first)  # the first peer's neighbour is now the new one
        if self.listener is not None:
            self.listener(self._event("join", member))
        return self._reg_init(member)

    def _event(self, kind: str, member: Member) -> RingEvent:
        return RingEvent(
            kind,
            member.handle,
            member.ip,
            member.port,
            neighbour=self.neighbour(member).handle,
            hosts=self.hosted(member),
            peers=self._size,
        )

    # ---------------------------------------------------------------------- pings

    def ping_result(self, handle: str, ok: bool, now: float, why: str = "") -> bool:
        """A PING to ``handle`` was answered (``ok``) or not (``why``: what happened,
        in words); a peer that did not answer leaves the ring. True if it left."""
        member = self._by_handle.get(handle)
        self.counters.pings["ok" if ok else "failed"] += 1
        if member is None:
            return False
        member.pings += 1
        member.last_ping = now
        member.last_ping_ok = ok
        if ok:
            member.last_seen = now
            return False
        self.remove(handle)
        self.counters.pruned += 1
        if self.listener is not None:
            self.listener(
                RingEvent(
                    "prune",
                    member.handle,
                    member.ip,
                    member.port,
                    peers=self._size,
                    why=why or "it did not answer a PING",
                )
            )
        return True

    def remove(self, handle: str) -> None:
        """``handle`` leaves; its successor is told its new neighbour."""
        member = self._by_handle.pop(handle, None)
        if member is None:
            return
        successor = self._successor(member)
        if member.prev is None:
            self._first = member.next
        else:
            member.prev.next = member.next
        if member.next is None:
            self._last = member.prev
        else:
            member.next.prev = member.prev
        member.prev = member.next = None
        self._size -= 1
        left = self._from[member.ip] - 1
        if left:
            self._from[member.ip] = left
        else:
            del self._from[member.ip]
        if member.position is not None:
            self._hosts[member.position] -= 1
            if not self._hosts[member.position]:
                heapq.heappush(self._freed, member.position)
        if successor is not member:
            self._tell(successor)

    # ------------------------------------------------------------------ internals

    def _successor(self, member: Member) -> Member:
        nxt = member.next if member.next is not None else self._first
        assert nxt is not None
        return nxt

    def _tell(self, member: Member) -> None:
        nbr = self.neighbour(member)
        message = UpdateNbr(nbr.handle, nbr.ip, nbr.port)
        self.outbox.append(Notice(member.address, member.handle, message))
        self.counters.neighbour_updates += 1

    def _reg_init(self, member: Member) -> RegInit:
        nbr = self.neighbour(member)
        return RegInit(nbr.handle, nbr.ip, nbr.port, self.n, self.hosted(member))

    def _take_position(self) -> int | None:
        """``index % N`` for the peer about to join, unless a peer that left freed a
        position no one hosts now: then the lowest such. (The lowest position no one
        hosts is a freed one or the next never handed out; while fewer peers than N
        are in, it is at most their number, so the rule is as the course's when no one
        has left.)"""
        if not self.n:
            return None
        freed = self._freed
        while freed and self._hosts.get(freed[0], 0):
            heapq.heappop(freed)  # (hosted again since it was freed)
        lowest = min(freed[0], self._fresh) if freed else self._fresh
        if lowest < min(self.n, self._size + 1):
            if lowest == self._fresh:
                self._fresh += 1
            else:
                heapq.heappop(freed)
            position = lowest
        else:
            position = self._size % self.n
        self._hosts[position] = self._hosts.get(position, 0) + 1
        return position


def _address_text(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _quote(text: str, limit: int = 24) -> str:
    """A handle or a tag as a student wrote it, quoted and cut (any text may come)."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return "'" + (shown if len(shown) <= limit else shown[: limit - 1] + "\u2026") + "'"


_FIELDS = re.compile(r"(\w+) with (\d+) fields, not (\d+)")
_TYPES = re.compile(r"(\w+): not (\(.*\))")


def bad_message_words(reason: str) -> str:
    """A Part 2 message that could not be read (:class:`~cs457p2p.core.wire2.BadMessage`'s
    reason), in words."""
    if reason.startswith("unknown message "):
        return f"sent {reason[16:]}, a message the tracker does not know"
    m = _FIELDS.fullmatch(reason)
    if m:
        fields = "1 field" if m[2] == "1" else f"{m[2]} fields"
        return f"sent {_quote(m[1])} with {fields}: it takes {m[3]}"
    m = _TYPES.fullmatch(reason)
    if m:
        return f"sent {_quote(m[1])} with fields that are not {m[2]}"
    return f"sent a message the tracker cannot read ({reason})"
