"""What the checker recorded, as plain data built by the recording side and read by the
judges: a student's client run against a tracker the checker played
(:class:`ClientTranscript`), and a student's Part 2 tracker met by the peers the checker
played (:class:`RingTrackerTranscript`)."""

from __future__ import annotations

from dataclasses import dataclass

from ...core.decoder import Value
from ...core.wire2 import BadMessage, Message, parse

__all__ = [
    "ANSWERED",
    "CLOSED",
    "NOT_SENT",
    "UNREACHABLE",
    "Arrival",
    "ClientTranscript",
    "Connection",
    "Exchange",
    "PingWatch",
    "ProgramRun",
    "RingPeer",
    "RingTrackerTranscript",
]


@dataclass(frozen=True)
class Connection:
    """One connection the played tracker accepted, as the course's tracker handles it
    (one read, one answer). Times are seconds from the program's start; ``read_at`` is
    None when nothing came before the run ended (it held the connection idle)."""

    at: float
    data: bytes = b""
    read_at: float | None = None
    reply: bytes | None = None


@dataclass(frozen=True)
class ProgramRun:
    """How the program ended: its exit code (None: killed at the timeout), its output,
    and the sandbox's word on it."""

    exit: int | None
    timed_out: bool
    seconds: float
    stdout: str
    stderr: str = ""
    limit: str = ""
    setup_error: str = ""


@dataclass(frozen=True)
class ClientTranscript:
    """A client's run against one played tracker: where it was (``address``), the
    database as stored (position 0 first), every connection in order, and the run."""

    scenario: str
    address: str
    stored: tuple[tuple[int, str], ...]
    connections: tuple[Connection, ...]
    run: ProgramRun
    timeout: float

    @property
    def message_values(self) -> list[str]:
        """The VALUEs in SEQNUM order."""
        return [v for _, v in sorted(self.stored)]


# --------------------------------------------------------------- a Part 2 tracker

#: How an exchange ended (the kinds of :class:`cs457p2p.checker.links.Reply`): an
#: answer decoded; the tracker closed (or reset) first; no connection at all. The others
#: are ``"timeout"`` and ``"undecodable"``.
ANSWERED = "answer"
CLOSED = "closed"
UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Exchange:
    """One request on a connection of its own: what was sent (``sent``: the message as
    its tuple, or the raw bytes of what is no pickle) from which address (``source``,
    "": the system's choice), and what came back: ``kind``, the first value decoded
    (``value``, when ``kind`` is :data:`ANSWERED`) or what happened in words
    (``detail``); ``at``: when it ended, in seconds from the run's start."""

    sent: Value
    kind: str
    value: Value = None
    detail: str = ""
    source: str = ""
    at: float = 0.0

    @property
    def message(self) -> Message | BadMessage | None:
        """The answer as a Part 2 message (None: no answer)."""
        return parse(self.value) if self.kind == ANSWERED else None


#: A step the run never reached (it stopped before).
NOT_SENT = Exchange(None, "not sent", detail="not sent")


@dataclass(frozen=True)
class Arrival:
    """A message that reached a played peer, and when (seconds from the run's start);
    ``message`` None: bytes that were no message."""

    at: float
    message: Message | BadMessage | None


@dataclass(frozen=True)
class RingPeer:
    """A peer the checker played: its handle and where it listened, its REGISTER and
    the answer (None: it never registered), and every message that reached it."""

    handle: str
    host: str
    port: int
    joined: Exchange | None = None
    heard: tuple[Arrival, ...] = ()


@dataclass(frozen=True)
class PingWatch:
    """The wait for PINGs and the prune: when it began (``start``), when the second
    peer stopped listening (``stopped``), and when the checker stopped looking
    (``ended``); seconds from the run's start."""

    start: float
    stopped: float
    ended: float


@dataclass(frozen=True)
class RingTrackerTranscript:
    """A Part 2 tracker at ``address`` met by played peers, step by step: the first
    peer's ECHO; every peer in the order played (the first three registered one after
    another, then more up to N), each with its REGISTER's answer and what it heard; when
    the UPDATE_NBRs were counted (``counted_at``: the joins were over); a taken handle's
    REGISTER from another address and an ECHO after it; the wait for PINGs and the prune
    (``watch``, None: not run, with ``wait`` 0 or fewer than three peers); garbage, and
    an ECHO after it. A run that found nothing listening or got no REG_INIT for its
    first peer stops there: the steps after are :data:`NOT_SENT`."""

    address: str
    wait: float
    echo: Exchange
    peers: tuple[RingPeer, ...]
    counted_at: float = 0.0
    duplicate: Exchange = NOT_SENT
    after_duplicate: Exchange = NOT_SENT
    watch: PingWatch | None = None
    garbage: Exchange = NOT_SENT
    after_garbage: Exchange = NOT_SENT
