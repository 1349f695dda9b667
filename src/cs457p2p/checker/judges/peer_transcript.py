"""What the checker recorded of one run of a student's Part 2 peer (``check peer``)
against the tracker and the two neighbours it played: plain data, built by
:mod:`cs457p2p.checker.peer_checks`, read by :mod:`.peer`. Times are seconds from the
program's start.

The checker talks to the peer in steps, each recorded as it happened: it waits for a
REGISTER (:attr:`PeerTranscript.register_wait`), PINGs the port the peer gave
(:attr:`PeerTranscript.pings`), and once the port answers goes on (:class:`Served`).
Where it stopped early the later steps are absent, and the judge says they did not run.
What reached the parts it played is kept whole, with times: the judge looks at what had
arrived by the moment each step decided.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.decoder import Value
from ...core.wire2 import BadMessage, Message
from .transcript import ProgramRun

__all__ = ["Moment", "PeerTranscript", "Played", "Probe", "Received", "Served"]


@dataclass(frozen=True)
class Received:
    """One message that reached a part the checker played (its tracker, neighbour A or
    B), one per connection: when it was whole, from which address, what the restricted
    decoder read (``message`` None: ``problem`` says why) and its first bytes."""

    at: float
    sender: str
    message: Message | BadMessage | None
    problem: str = ""
    raw: bytes = b""


@dataclass(frozen=True)
class Probe:
    """One message the checker sent to the peer's port, on a connection of its own
    (``at``: when it started), and what came back: ``kind`` as
    :mod:`cs457p2p.checker.links` says (``answer``, ``closed``, ``timeout``,
    ``unreachable``, ``undecodable``), the values decoded, the first bytes, and for
    anything but an answer what happened, in words."""

    at: float
    sent: bytes
    kind: str
    values: tuple[Value, ...] = ()
    raw: bytes = b""
    detail: str = ""


@dataclass(frozen=True)
class Moment:
    """The program as the checker saw it when a wait ended: when, its exit code (None:
    still running) and what it had printed by then."""

    at: float
    exit: int | None
    stdout: str = ""


@dataclass(frozen=True)
class Played:
    """A neighbour the checker played: its handle and where it listened."""

    handle: str
    host: str
    port: int


@dataclass(frozen=True)
class Served:
    """The steps after the peer's port answered PING (or, under HW09, kept it in the
    ring), in order: its hosted item and one it lacks asked for; the UPDATE_NBR naming B
    (``b_waited``: when the wait for its first QUERY to B ended); the wait for the
    message (``collecting``); a QUERY for an item it collected (a PING when it printed
    no message); a message it does not know and garbage, each followed by a PING."""

    hosted: Probe
    lacking: Probe
    update: Probe
    b_waited: float
    collecting: Moment
    keeps_serving: Probe
    wrong_tuple: Probe
    wrong_tuple_ping: Probe
    garbage: Probe
    garbage_ping: Probe


@dataclass(frozen=True)
class PeerTranscript:
    """One ``check peer`` run: the profile (``""``, or ``"hw09"``: as the course's
    programs meet it), the items (VALUEs in SEQNUM order; the peer hosts ``hosted``),
    the neighbours A (named in REG_INIT) and B (named by UPDATE_NBR), the run's
    ``timeout``; what reached the played tracker, A and B; each step; when the checks
    ended (``ended``: what arrived later is not judged); how the program ran."""

    profile: str
    words: tuple[str, ...]
    hosted: int
    a: Played
    b: Played
    timeout: float
    to_tracker: tuple[Received, ...]
    to_a: tuple[Received, ...]
    to_b: tuple[Received, ...]
    register_wait: Moment
    pings: tuple[Probe, ...]
    served: Served | None
    ended: float
    run: ProgramRun
