"""Which TCP connections the tracker takes, sans I/O: so that one host holding every slot
can never keep another host out.

* At most ``max_connections`` are open, and at most ``per_address`` from one address.
* When every slot is taken, a newcomer from an address with fewer connections than the
  busiest address takes the place of one of the busiest's (its longest silent one, which
  the driver picks): whoever holds the most gives way first, so another address is
  always served.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Admission", "Verdict"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """``accept``: take the newcomer; ``evict``: first close one connection of that
    address (the driver picks which)."""

    accept: bool
    evict: str | None = None
    why: str = ""


class Admission:
    """The open TCP connections, counted by address, and what to do with a newcomer."""

    __slots__ = ("counts", "max_connections", "open", "per_address")

    def __init__(self, max_connections: int, per_address: int) -> None:
        if max_connections < 1 or per_address < 1:
            raise ValueError("limits must be at least 1")
        self.max_connections = max_connections
        self.per_address = per_address
        self.counts: dict[str, int] = {}
        self.open = 0

    def verdict(self, address: str) -> Verdict:
        """What to do with a connection from ``address`` (not yet counted)."""
        mine = self.counts.get(address, 0)
        if mine >= self.per_address:
            return Verdict(False, why="per-address")
        if self.open < self.max_connections:
            return Verdict(True)
        busiest = max(self.counts, key=self.counts.__getitem__)
        if self.counts[busiest] > mine + 1:
            return Verdict(True, evict=busiest)
        return Verdict(False, why="full")

    def opened(self, address: str) -> None:
        self.counts[address] = self.counts.get(address, 0) + 1
        self.open += 1

    def closed(self, address: str) -> None:
        left = self.counts.get(address, 0) - 1
        if left > 0:
            self.counts[address] = left
        else:
            self.counts.pop(address, None)
        self.open = max(0, self.open - 1)
