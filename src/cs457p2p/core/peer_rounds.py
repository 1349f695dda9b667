"""A Part 2 peer's exchanges, sans I/O: the rules its fetcher's driver
(:mod:`cs457p2p.peer.node`) applies to what one ask brought, beside the
:class:`~cs457p2p.core.peer_state.PeerState` that made the ask.

* What one exchange may read (:func:`read_limit`): the characters of VALUEs the peer
  may still hold, and one longest message (:data:`MAX_MESSAGE`) more; a message is
  read up to :data:`MAX_MESSAGE` characters.
* What a round of one-QUERY connections to a one-shot target brought
  (:func:`round_answers`): every answer that came back, in order; the round failed
  only when nothing came back and its first connection failed.
* What an answer over the peer's memory limit means (:func:`over_limit`): the
  tracker's items over ``max_bytes`` end the run (:data:`END`: the whole message
  cannot be held); a neighbour's are ignored, said once (:data:`TELL`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from .peer_state import TRACKER, Ask, PeerState
from .wire2 import BadMessage, Message, QueryResult, Said

__all__ = [
    "END",
    "MAX_MESSAGE",
    "TELL",
    "Answer",
    "over_limit",
    "query_answers",
    "read_limit",
    "round_answers",
]

#: Longest Part 2 message a peer reads (a QUERY_RESULT with a long VALUE).
MAX_MESSAGE = 1 << 20
#: What :func:`over_limit` says: the run ends; a neighbour's answer went over, say so.
END, TELL = "end", "tell"

#: What a QUERY is answered with, as the state takes it.
Answer: TypeAlias = QueryResult | Said | BadMessage


def read_limit(state: PeerState) -> int:
    """Bytes one exchange of ``state``'s may read, at most: the VALUEs it may still hold
    (``max_bytes`` less what it holds), and one longest message more."""
    return max(0, state.max_bytes - state.value_bytes) + MAX_MESSAGE


def query_answers(replies: Sequence[Message | BadMessage]) -> list[Answer]:
    """``replies`` to QUERYs as the state takes them: anything but a QUERY_RESULT, a
    ``Said`` or a bad message is a bad message."""
    return [
        r if isinstance(r, (QueryResult, Said, BadMessage)) else BadMessage("?") for r in replies
    ]


def round_answers(outcomes: Sequence[Sequence[Message | BadMessage] | None]) -> list[Answer] | None:
    """What a round of one-QUERY connections brought, its connections' ``outcomes`` in
    order (None: that connection failed): every answer, in order; None when the round
    failed, which is only when nothing came back and its first connection failed (the
    driver words that connection's error; :meth:`PeerState.failed`). A round whose
    first connection closed without an answer got nothing, and is
    :meth:`PeerState.answered`, as is one that got anything."""
    out: list[Answer] = []
    for replies in outcomes:
        if replies is not None:
            out.extend(query_answers(replies))
    if not out and outcomes and outcomes[0] is None:
        return None
    return out


def over_limit(state: PeerState, ask: Ask) -> str | None:
    """After :meth:`PeerState.answered`: did the answers to ``ask`` go over the VALUEs
    ``state`` may hold (its ``too_large``, cleared here)? :data:`END` when they are the
    tracker's (it is the last to ask: the message cannot be whole), :data:`TELL` the
    first time a neighbour's did (they are ignored), None otherwise."""
    if not state.too_large:
        return None
    state.too_large = False
    if ask.target == TRACKER:
        return END
    state.counters.asks_over_limit += 1
    return TELL if state.counters.asks_over_limit == 1 else None
