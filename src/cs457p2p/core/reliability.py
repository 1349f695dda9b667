"""Reliable collection over UDP, sans I/O: round-trip estimation and the bookkeeping
that ties each answer datagram to the request that caused it.

An answer ``(SEQNUM, VALUE)`` does not say which position it answers, and a datagram
can be lost, duplicated, reordered or late. The rules that keep attribution certain:

* An *attempt* is one request datagram (a batch of positions) sent from one socket. A
  socket carries one attempt at a time, so a reply that reaches it answers that
  attempt's positions, in order (a prefix of them, if the tracker had to cut it).
* A socket gets a new attempt only after its previous attempt was answered. Any late
  copy that reaches it afterwards is then a copy of an answered reply: its first SEQNUM
  is already filled, and it is discarded as stale. A genuine reply to a new attempt
  starts with an unanswered position, whose SEQNUM cannot be filled yet (SEQNUMs are a
  permutation of the positions).
* A socket whose attempt timed out is retired: it keeps listening (its one attempt may
  still be answered late, and that reply is still certain), but never sends again.

A tracker answers a datagram with at most three times its size (RFC 9000's limit on
what an unvalidated address may get back): :class:`Padding` pads each request with
spaces so that the answers it asks for fit, from the size the answers turn out to have.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .collection import Collection, is_run
from .errors import LocalProtocolError, RemoteProtocolError
from .wire import AMPLIFICATION, MAX_DATAGRAM

__all__ = ["AMPLIFICATION", "Attempt", "Channel", "Padding", "RttEstimator"]


class RttEstimator:
    """Retransmission timeout from measured round trips (RFC 6298, with Karn's rule
    unnecessary: each attempt has its own socket, so every sample is unambiguous)."""

    def __init__(self, initial: float = 0.1, min_rto: float = 0.02, max_rto: float = 1.0) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.min_rto = min_rto
        self.max_rto = max_rto
        self._rto = initial
        self._backoff = 1.0

    @property
    def rto(self) -> float:
        return min(self._rto * self._backoff, self.max_rto)

    def sample(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self._rto = max(self.min_rto, self.srtt + 4 * self.rttvar)
        self._backoff = 1.0

    def timed_out(self) -> None:
        self._backoff = min(self._backoff * 2, 8.0)


class Padding:
    """How much to pad a request datagram, from the size of an answer: learned from the
    replies (quickly up, slowly down), doubled when an attempt brings nothing back (its
    answers may not have fitted), raised when a reply is cut short."""

    MARGIN = 1.25

    def __init__(self, answer_size: float = 64.0) -> None:
        self.answer_size = answer_size

    def pad(self, request: bytes, count: int) -> bytes:
        """``request`` (``count`` positions) with the spaces that buy room for their
        answers, within one datagram."""
        want = math.ceil(count * self.answer_size * self.MARGIN / AMPLIFICATION)
        want = min(want, MAX_DATAGRAM)
        return request + b" " * (want - len(request)) if len(request) < want else request

    def replied(self, size: int, answers: int, cut: bool) -> None:
        """A reply of ``size`` bytes held ``answers`` answers (``cut``: fewer than asked)."""
        each = size / max(answers, 1)
        self.answer_size = max(self.answer_size * 0.9, each)
        if cut:
            self.answer_size = min(self.answer_size * 1.5, MAX_DATAGRAM)

    def timed_out(self) -> None:
        self.answer_size = min(self.answer_size * 2, MAX_DATAGRAM)


@dataclass
class Attempt:
    """One request datagram: the positions asked, in order, and when."""

    positions: Sequence[int]
    sent_at: float
    answered: bool = False


class Channel:
    """The state of one UDP socket: its attempt, and the first SEQNUM of every reply
    it has accepted (a reply starting with one of those is a late copy: stale)."""

    __slots__ = ("attempt", "firsts", "retired")

    def __init__(self) -> None:
        self.attempt: Attempt | None = None
        self.firsts: set[int] = set()
        self.retired = False

    @property
    def can_send(self) -> bool:
        return not self.retired and (self.attempt is None or self.attempt.answered)

    def start(self, positions: Sequence[int], now: float) -> Attempt:
        if not positions:
            raise LocalProtocolError("an attempt needs at least one position")
        if not self.can_send:
            raise LocalProtocolError("this socket is retired or still awaits an answer")
        self.attempt = Attempt(positions, now)
        return self.attempt

    def timed_out(self) -> list[int]:
        """Retire this socket; return its attempt's positions to ask again elsewhere."""
        self.retired = True
        a = self.attempt
        return [] if a is None or a.answered else list(a.positions)

    def on_reply(self, coll: Collection, seqs: list[int], texts: list[bytes]) -> list[int] | None:
        """Place a reply (its answers' SEQNUMs and UTF-8 VALUEs, in order); return the
        positions it left unanswered (to ask again), or None when it is stale or has
        nothing new.

        Raises :class:`~cs457p2p.core.errors.RemoteProtocolError` for more answers than asked and
        :class:`~cs457p2p.core.collection.CollectionError` for a contradiction.
        """
        a = self.attempt
        if a is None or not seqs:
            return None
        if seqs[0] in self.firsts or a.answered:
            return None  # a late copy of a reply this socket already accepted
        k = len(seqs)
        if k > len(a.positions):
            raise RemoteProtocolError(
                f"a reply held {k} answers to a request for {len(a.positions)}"
            )
        a.answered = True
        self.firsts.add(seqs[0])
        if is_run(a.positions[:k]):  # consecutive positions: in bulk
            coll.place_run(a.positions[0], seqs, texts)
        else:
            for position, seq, text in zip(a.positions, seqs, texts, strict=False):
                coll.place(position, seq, text)
        if self.retired:
            return []  # its positions were already given back when it timed out
        return list(a.positions[k:])
