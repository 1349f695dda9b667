"""What a Part 2 peer's port answers, sans I/O: a
:class:`~cs457p2p.core.connection_rules.Responder` over the peer's
:class:`~cs457p2p.core.peer_state.PeerState`. The peer's connections run the same
:class:`~cs457p2p.core.connection_rules.ConnectionRules` as the tracker's (one message
alone: its answer, then close, as the course's programs expect; several: every answer,
in order), so a peer has the tracker's limits against slow or flooding senders
(:func:`port_limits`: a request within the peer's timeout, an idle connection closed
after :data:`IDLE_TIMEOUTS` of them); it imports nothing of the tracker's (its
database, its ring).
"""

from __future__ import annotations

from .connection_rules import Limits
from .errors import LocalProtocolError
from .peer_state import PeerState
from .requests import PositionRun, Request, RingMessage
from .wire2 import bad_request, encode_message, parse

__all__ = ["IDLE_TIMEOUTS", "PeerPort", "port_limits"]

#: A connection to a peer's port idle for this many of its timeouts is closed.
IDLE_TIMEOUTS = 4


def port_limits(timeout: float) -> Limits:
    """The limits of a connection to a peer's port: each request whole within
    ``timeout`` seconds, an idle connection closed after :data:`IDLE_TIMEOUTS` times
    that; the rest the tracker's."""
    return Limits(request_timeout=timeout, idle_timeout=IDLE_TIMEOUTS * timeout)


class PeerPort:
    """A peer's answers: Part 2 messages from ``state`` (a PING, a QUERY, an UPDATE_NBR
    taken, with nothing to send back), each acted on once, when the connection's rules
    take it; anything else (a Part 1 request) refused in Part 2's words."""

    __slots__ = ("_refusal", "state")

    def __init__(self, state: PeerState) -> None:
        self.state = state
        self._refusal = encode_message(bad_request(f"[{state.handle}]"))

    @property
    def run_limit(self) -> int:
        """No runs of positions: a peer holds no database."""
        return 0

    def answer(self, request: Request) -> bytes:
        if type(request) is RingMessage:
            reply = self.state.answer(parse(request.value), request.at, request.peer)
            return b"" if reply is None else encode_message(reply)
        return self._refusal

    def run_fitting(self, run: PositionRun, budget: int) -> int:
        raise LocalProtocolError("a peer's port parses no runs of positions (run_limit 0)")
