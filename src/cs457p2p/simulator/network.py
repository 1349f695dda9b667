"""The simulated network: a virtual clock, the events due on it, and how long a message
takes from one host to another. Pure code: time is the clock's, randomness a seeded
``random.Random``, so a run is the same for the same seed.

A message takes the one-way ``latency``, give or take ``jitter`` (uniform). A lost
message is sent again, as TCP does, after ``rto`` (at least twice the latency), as many
times as it is lost: loss makes messages late, never gone, and connections never fail
because of it. A peer that is down refuses connections (one round trip to learn it).
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ["Clock", "Network"]


@dataclass(frozen=True)
class Network:
    latency: float = 0.010
    jitter: float = 0.0
    loss: float = 0.0
    rto: float = 0.2

    def delay(self, rng: random.Random) -> float:
        """Seconds one message takes (its retransmissions included)."""
        d = self.latency
        if self.jitter:
            d = max(0.0, d + rng.uniform(-self.jitter, self.jitter))
        if self.loss:
            again = max(self.rto, 2 * self.latency)
            while rng.random() < self.loss:
                d += again
        return d


class Clock:
    """Events in time order (ties: in the order they were scheduled). Events a fixed
    delay after now (:meth:`after`, the messages of a network without jitter or loss)
    arrive in the order they were sent, so they wait in a FIFO, not the heap."""

    __slots__ = ("_delay", "_seq", "fifo", "fixed", "heap", "now")

    def __init__(self, fixed: float | None = None) -> None:
        self.now = 0.0
        self.fixed = fixed
        self._delay = fixed if fixed is not None else 0.0
        self.heap: list[tuple[float, int, int, tuple[Any, ...]]] = []
        self.fifo: deque[tuple[float, int, int, tuple[Any, ...]]] = deque()
        self._seq = 0

    def __len__(self) -> int:
        return len(self.heap) + len(self.fifo)

    def at(self, when: float, kind: int, *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self.heap, (when, self._seq, kind, args))

    def after(self, delay: float, kind: int, args: tuple[Any, ...]) -> None:
        """An event ``delay`` seconds from now (the FIFO when ``delay`` is the fixed one)."""
        self._seq += 1
        event = (self.now + delay, self._seq, kind, args)
        if delay == self.fixed:
            self.fifo.append(event)
        else:
            heapq.heappush(self.heap, event)

    def after_fixed(self, kind: int, args: tuple[Any, ...]) -> None:
        """An event the fixed delay from now (:meth:`after` with it, one call less: the
        simulator sends every message through here)."""
        self._seq += 1
        self.fifo.append((self.now + self._delay, self._seq, kind, args))

    def next(self) -> tuple[int, tuple[Any, ...]]:
        """The next event (the clock moves to its time). (The simulator's run loop has
        these lines inlined: keep them alike.)"""
        fifo, events = self.fifo, self.heap
        if fifo and (not events or fifo[0] < events[0]):  # (time, then order: never equal)
            when, _, kind, args = fifo.popleft()
        else:
            when, _, kind, args = heapq.heappop(events)
        self.now = when
        return kind, args
