"""The tracker's answers, sans I/O: Part 1 requests from its database's pre-encoded
answers, Part 2 messages from its :class:`~cs457p2p.core.ring.Ring`. A
:class:`~cs457p2p.core.connection_rules.Responder` for the tracker's connections
(:class:`~cs457p2p.core.connection_rules.ConnectionRules`), its datagrams
(:func:`~cs457p2p.core.datagram_rules.answer_datagram`) and the requests its driver
answers at accept time.
"""

from __future__ import annotations

from collections.abc import Sequence

from .database import Database
from .errors import LocalProtocolError
from .requests import Position, PositionRun, Register, Request, RingMessage
from .ring import Ring
from .wire import BAD_REQUEST, BAD_REQUEST_TEXT
from .wire2 import TRACKER_NAME, Said, encode_message, parse

__all__ = ["TrackerResponder"]


class TrackerResponder:
    """The tracker's answer to each request, from its database's pre-encoded answers,
    and for Part 2 messages from its ring (None: Part 2 is off, and ``ring_off`` says
    why to whoever sends one)."""

    __slots__ = ("_refusal", "count_answer", "db", "n", "ring", "ring_off")

    def __init__(self, db: Database, ring: Ring | None = None, ring_off: str = "") -> None:
        self.db = db
        self.n = len(db)
        self.count_answer = db.count_answer
        self.ring = ring
        self.ring_off = ring_off
        #: a Part 2 message's answer when the ring does not take it
        self._refusal = encode_message(Said(TRACKER_NAME, ring_off or BAD_REQUEST_TEXT))

    @property
    def run_limit(self) -> int:
        """Runs of positions are answered from the database: any position in it."""
        return self.n

    def answer(self, request: Request) -> bytes | memoryview:
        """The bytes that answer one request (a run: all its answers, back to back). A
        Part 2 message is acted on by the ring: ask once per message."""
        if isinstance(request, PositionRun):
            return self.db.answer_run(request.start, request.count)
        if isinstance(request, Position):
            if 0 <= request.index < self.n:
                return self.db.answer(request.index)
            return BAD_REQUEST
        if isinstance(request, Register):
            return self.count_answer
        if isinstance(request, RingMessage):
            return self._ring_answer(request)
        return BAD_REQUEST

    def _ring_answer(self, message: RingMessage) -> bytes:
        """What the ring answers ``message`` (it acts on it). Without a ring, or without
        the sender's address (a datagram: Part 2 is TCP only), it is refused."""
        if self.ring is None or not message.peer:
            return self._refusal
        reply = self.ring.answer(parse(message.value), message.peer, message.at, message.registers)
        return encode_message(reply)

    def run_fitting(self, run: PositionRun, budget: int) -> int:
        """How many of ``run``'s first answers fit in ``budget`` bytes."""
        return self.db.run_fitting(run.start, run.count, budget)

    def size(self, requests: Sequence[Request]) -> int:
        """Bytes that the answers to ``requests`` take, without building them or acting
        on anything: for a datagram's requests (a Part 2 message that names its sender,
        which the ring would act on, is a :class:`LocalProtocolError`)."""
        off = self.db.offsets
        total = 0
        for r in requests:
            if isinstance(r, PositionRun):
                total += off[r.start + r.count] - off[r.start]
            elif isinstance(r, RingMessage):
                if r.peer and self.ring is not None:
                    raise LocalProtocolError("size() would act on the ring: answer it instead")
                total += len(self._refusal)
            else:
                total += len(self.answer(r))
        return total
