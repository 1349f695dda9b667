"""The dashboard's event feed, sans I/O: the last :data:`FEED_SIZE` things that happened
at the tracker, each said in words for a lab on a projector: who registered, finished,
joined the ring, was pruned, or was refused and why.

A :class:`Feed` is a ring buffer: memory stays bounded however much happens. The same
thing again from the same client (a client sending garbage in a loop) is not a new
entry: the entry among the last :data:`COALESCE` that says it counts one more and moves
to the newest place, so a few misbehaving clients cannot push everything else out; a
refusal repeated costs no new words.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .refusals import quote_text
from .ring import RingEvent

__all__ = [
    "COALESCE",
    "FEED_SIZE",
    "Feed",
    "FeedEntry",
    "finished_words",
    "registered_words",
    "ring_words",
    "seconds_words",
]

#: Entries kept, at most.
FEED_SIZE = 100
#: A repeat is looked for among this many of the newest entries.
COALESCE = 8


@dataclass(slots=True)
class FeedEntry:
    """One line of the feed. ``kind``: ``register``, ``finished``, ``refused``,
    ``refused_connections``, ``join``, ``refresh``, ``prune`` or ``peer_finished``;
    ``who``: a client's address or a peer's handle; ``count``: how many times it
    happened (a repeat among the newest :data:`COALESCE` entries counts here; the last
    at ``time``)."""

    id: int
    time: float
    kind: str
    who: str
    text: str
    key: str
    count: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": round(self.time, 3),
            "kind": self.kind,
            "who": self.who,
            "text": self.text,
            "count": self.count,
        }


class Feed:
    """The last ``size`` entries, oldest first; ids grow by one per change."""

    def __init__(self, size: int = FEED_SIZE) -> None:
        if size < 1:
            raise ValueError("a feed holds at least one entry")
        self.entries: deque[FeedEntry] = deque(maxlen=size)
        self.last_id = 0

    def __len__(self) -> int:
        return len(self.entries)

    def add(
        self, time: float, kind: str, who: str, words: str | Callable[[], str], key: str = ""
    ) -> FeedEntry:
        """Something happened: a new entry, or one more of a recent one with the same
        ``kind``, ``who`` and ``key`` (``words`` is then not even asked for)."""
        self.last_id += 1
        entries = self.entries
        for k in range(1, min(COALESCE, len(entries)) + 1):
            e = entries[-k]
            if e.kind == kind and e.who == who and e.key == key:
                del entries[-k]
                e.count += 1
                e.time = time
                e.id = self.last_id
                if isinstance(words, str):
                    e.text = words  # (said again, as it is now: "in 0.2 s" this time)
                entries.append(e)
                return e
        text = words if isinstance(words, str) else words()
        entry = FeedEntry(self.last_id, time, kind, who, text, key)
        entries.append(entry)
        return entry

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.entries]


def seconds_words(seconds: float) -> str:
    """``0.14 s``, ``12.3 s``, ``2 min 5 s``, ``1 h 2 min``."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def registered_words(n: int, registrations: int) -> str:
    again = f" again ({registrations:,} times)" if registrations > 1 else ""
    return f"registered{again}: the tracker answered N = {n:,}"


def finished_words(n: int, seconds: float) -> str:
    return f"fetched all {n:,} items in {seconds_words(seconds)}"


def ring_words(e: RingEvent, n: int) -> str:
    """A ring event, in words (``n``: the items in the database)."""
    if e.kind == "join":
        if e.hosts is None:
            hosts = "hosts no item (the database is empty)"
        else:
            hosts = f"hosts item {e.hosts[0]:,} ({quote_text(e.hosts[1], 16)})"
        asks = "itself (alone in the ring)" if e.neighbour == e.handle else e.neighbour
        return f"joined the ring from {e.address}; {hosts}; asks {asks}"
    if e.kind == "refresh":
        return f"registered again from {e.address} (a refresh); asks {e.neighbour}"
    if e.kind == "prune":
        return f"pruned from the ring ({e.peers:,} left): {e.why}"
    if e.kind == "peer_finished":
        return f"holds all {n:,} items"
    return e.why
