"""What ``check tracker`` (Part 1) recorded of a running tracker: plain data, built by
:mod:`cs457p2p.checker.tracker_checks`, read by :mod:`.tracker`.

Every request went on a connection (TCP) or a socket (UDP) of its own, and is kept as an
:class:`Asked`: the bytes sent and what came back. The driver decided what to ask next
(a position only after REGISTER gave N, a look at whether the tracker still serves after
a bad request, nothing once the overall deadline passed); what it did not ask is absent,
and the judge says why from the rest (:attr:`TrackerTranscript.late`: the checks the
deadline kept from starting).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.decoder import Value

__all__ = [
    "ANSWER",
    "CLOSED",
    "NOT_KEPT",
    "TIMEOUT",
    "UNDECODABLE",
    "UNREACHABLE",
    "Asked",
    "BadRequest",
    "ClientRun",
    "Serves",
    "TrackerTranscript",
]

#: How an exchange ended (the kinds of :class:`cs457p2p.checker.links.Reply`): the
#: answers wanted, decoded; the tracker closed (or reset) first; nothing more in time; no
#: connection at all; bytes the restricted decoder refuses.
ANSWER = "answer"
CLOSED = "closed"
TIMEOUT = "timeout"
UNREACHABLE = "unreachable"
UNDECODABLE = "undecodable"
#: An answer that came, decoded, but was not kept: the VALUEs kept so far already added
#: up to the checker's limit (:data:`.tracker_answers.MAX_HELD`).
NOT_KEPT = "not kept"


@dataclass(frozen=True, slots=True)
class Asked:
    """One request and what came back: ``kind`` (above), the values decoded in order,
    the first bytes received (at most 256), for anything but an answer what happened in
    words (``detail``), and how long the exchange took (``seconds``, of an answer)."""

    sent: bytes
    kind: str
    values: tuple[Value, ...] = ()
    raw: bytes = b""
    detail: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class ClientRun:
    """One client: its REGISTER, then its position requests in the order they ended
    (none when REGISTER gave no N, or another N than the first client's). A client stops
    asking at the first position that does not answer a pair (or, after the first, a
    pair other than the first client's); the requests under way then still end."""

    register: Asked
    positions: tuple[tuple[int, Asked], ...] = ()


@dataclass(frozen=True)
class Serves:
    """A look at whether the tracker still serves: REGISTER, then position 0 (asked
    when REGISTER gave the first client's N and the first client got position 0)."""

    register: Asked
    position0: Asked | None = None


@dataclass(frozen=True)
class BadRequest:
    """A request no tracker should choke on (``what``: ``"position -1"``,
    ``"non-pickle bytes"``...), what it got, and the look after it (None: not looked,
    the request already showed the tracker stopped serving)."""

    what: str
    asked: Asked
    serves: Serves | None = None


@dataclass(frozen=True)
class TrackerTranscript:
    """One ``check tracker`` run against ``address`` over ``transport``, each request
    waited for up to ``timeout`` s, the run given ``deadline`` s.

    In the order asked: the first client (REGISTER, every position 0..N-1); a second
    client; :data:`~.tracker.CONCURRENT_CLIENTS` clients at once; the latency samples;
    REGISTER over the other transport (``other``); then the requests a fragile tracker
    may die of, in this order: ``out_of_range``, ``garbage``, ``pipelining`` (two
    requests in one), ``ascii`` (b'0'). After each of those that failed, the look at
    whether the tracker still serves is in ``after`` (by check name); once it did not,
    the driver asked nothing more. A run whose first REGISTER found nothing listening
    stops there."""

    address: str
    transport: str
    timeout: float
    deadline: float
    first: ClientRun
    second: ClientRun | None = None
    concurrent: tuple[ClientRun, ...] = ()
    latency: tuple[Asked, ...] = ()
    other: Asked | None = None
    out_of_range: tuple[BadRequest, ...] = ()
    garbage: tuple[BadRequest, ...] = ()
    pipelining: Asked | None = None
    ascii: Asked | None = None
    after: tuple[tuple[str, Serves], ...] = ()
    late: tuple[str, ...] = ()
