"""The pause the assignments ask for between item requests ("The client should pause
(use timer) for 2-3 seconds between db item requests. This simulates network lag."),
measured from when each request's connection arrived."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

__all__ = ["MAX_PAUSE", "MIN_PAUSE", "Pauses", "pauses"]

#: Shortest gap that counts as the assignment's pause (2 s, less a little for the
#: time a timer and a connection take to start: a 2 s sleep gives 2.00x s).
MIN_PAUSE = 1.9
#: Longest gap within "2-3 seconds", with the same room the other way.
MAX_PAUSE = 3.5


class Pauses:
    """The gaps between consecutive request times ``at``."""

    def __init__(self, at: Sequence[float]) -> None:
        ordered = sorted(at)
        self.gaps = [b - a for a, b in itertools.pairwise(ordered)]

    @property
    def shortest(self) -> float:
        return min(self.gaps)

    @property
    def longest(self) -> float:
        return max(self.gaps)

    @property
    def too_short(self) -> int:
        return sum(g < MIN_PAUSE for g in self.gaps)

    def words(self) -> str:
        if not self.gaps:
            return "one request: no pause to measure"
        if len(self.gaps) == 1:
            return f"a pause of {self.gaps[0]:.2f} s"
        span = f"{self.shortest:.2f} to {self.longest:.2f} s"
        return f"pauses of {span} between {len(self.gaps) + 1} requests"


def pauses(at: Sequence[float]) -> Pauses:
    return Pauses(at)
