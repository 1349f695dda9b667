"""The client's collection state, sans I/O: N slots made after REGISTER, which positions
are still to ask for, VALUEs placed by SEQNUM, and the checks that keep a wrong
message from ever being assembled.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

__all__ = ["Collection", "CollectionError"]


class CollectionError(Exception):
    """The answers cannot make a correct message (conflict or missing SEQNUM)."""


class Collection:
    """State of one client session after a successful REGISTER answered ``n``.

    Positions ``0..n-1`` are handed out by :meth:`take`, answers are recorded with
    :meth:`place`, and positions whose request was lost go back with :meth:`give_back`.
    """

    __slots__ = ("_by_position", "_queue", "_values", "answered", "filled", "n")

    def __init__(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"N must be a non-negative int, not {n!r}")
        self.n = n
        self._values: list[str | None] = [None] * n  # index: SEQNUM
        self._by_position: list[int] = [-1] * n  # index: position -> SEQNUM answered
        self._queue: deque[int] = deque(range(n))  # positions not asked for (or lost)
        self.answered = 0  # distinct positions answered
        self.filled = 0  # distinct SEQNUMs filled

    @property
    def complete(self) -> bool:
        """Every position has been answered."""
        return self.answered == self.n

    @property
    def queued(self) -> int:
        """Positions waiting to be asked for."""
        return len(self._queue)

    def take(self, k: int) -> list[int]:
        """Up to ``k`` unanswered positions to request next (removed from the queue)."""
        q = self._queue
        answered = self._by_position
        out: list[int] = []
        while q and len(out) < k:
            p = q.popleft()
            if answered[p] < 0:
                out.append(p)
        return out

    def is_answered(self, position: int) -> bool:
        return self._by_position[position] >= 0

    def give_back(self, positions: Iterable[int]) -> None:
        """Requests for these positions went unanswered: ask for them again first."""
        back = [p for p in positions if self._by_position[p] < 0]
        self._queue.extendleft(reversed(back))

    def place(self, position: int, seqnum: int, value: str) -> None:
        """Record that ``position`` answered ``(seqnum, value)`` (already type-checked,
        ``0 <= seqnum < n``). Raises :class:`CollectionError` on a contradiction."""
        earlier = self._by_position[position]
        if earlier >= 0:
            if earlier != seqnum or self._values[seqnum] != value:
                raise CollectionError(
                    f"position {position} answered twice with different items "
                    f"(SEQNUM {earlier} {self._values[earlier]!r}, then {seqnum} {value!r})"
                )
            return
        have = self._values[seqnum]
        if have is None:
            self._values[seqnum] = value
            self.filled += 1
        elif have != value:
            raise CollectionError(
                f"two different values for SEQNUM {seqnum}: {have!r} and {value!r}"
            )
        self._by_position[position] = seqnum
        self.answered += 1

    def has(self, seqnum: int) -> bool:
        """True once some answer has filled ``seqnum``."""
        return self._values[seqnum] is not None

    def missing(self) -> list[int]:
        """SEQNUMs that no answer has filled."""
        return [s for s, v in enumerate(self._values) if v is None]

    def message(self) -> str:
        """The VALUEs in SEQNUM order joined by single spaces; only when complete."""
        if not self.complete:
            raise CollectionError(f"only {self.answered} of {self.n} positions answered")
        if self.filled != self.n:
            missing = self.missing()
            shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
            raise CollectionError(
                f"every position answered but {len(missing)} SEQNUM(s) missing: {shown} "
                "(some SEQNUM was served twice)"
            )
        return " ".join(v for v in self._values if v is not None)
