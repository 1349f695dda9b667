"""The set-ups a client is checked against (``cs457p2p check client``): each one a
tracker with a database size, transports and faults. A table of its own, so that the
command line can list and validate them without importing the checker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..core.faults import FaultConfig

__all__ = ["CLIENT_SCENARIOS", "Scenario", "scenarios_for"]


@dataclass(frozen=True)
class Scenario:
    """One tracker set-up that a client must cope with."""

    name: str
    description: str
    items: int
    transports: tuple[str, ...] = ("tcp", "udp")
    faults: FaultConfig = field(default_factory=FaultConfig)
    #: the course's own tracker (one connection at a time, Python 2's pickles) instead of ours
    course: bool = False


CLIENT_SCENARIOS: tuple[Scenario, ...] = (
    Scenario("reference-db", "16 items, as many as the reference database", 16),
    Scenario("empty-db", "N = 0: the message is empty", 0),
    Scenario("large-db", "5,000 items", 5000),
    Scenario(
        "course-tracker",
        "the course's tracker-p1.py, modelled: one connection at a time, one read, Python"
        " 2's pickles (protocols 0-2), 'Bad request' to anything else",
        16,
        ("tcp",),
        course=True,
    ),
    Scenario(
        "chunked-answers",
        "every answer written 1 byte at a time",
        16,
        ("tcp",),
        FaultConfig(chunk=1),
    ),
    Scenario(
        "delayed-answers",
        "every answer delayed 100 +/- 50 ms",
        16,
        faults=FaultConfig(delay_ms=100, jitter_ms=50),
    ),
    Scenario("udp-loss", "20% of requests and answers lost", 100, ("udp",), FaultConfig(loss=0.2)),
    Scenario(
        "udp-duplicate", "30% of answers sent twice", 100, ("udp",), FaultConfig(duplicate=0.3)
    ),
    Scenario(
        "udp-reorder",
        "30% of answers held back behind later ones",
        100,
        ("udp",),
        FaultConfig(reorder=0.3),
    ),
)


def scenarios_for(transport: str, names: Sequence[str] | None = None) -> list[Scenario]:
    """The scenarios run over ``transport``, or just ``names`` (in the usual order)."""
    chosen = [s for s in CLIENT_SCENARIOS if transport in s.transports]
    if names:
        unknown = set(names) - {s.name for s in chosen}
        if unknown:
            raise ValueError(
                f"no scenario {sorted(unknown)[0]!r} over {transport};"
                f" choose from {', '.join(s.name for s in chosen)}"
            )
        chosen = [s for s in chosen if s.name in names]
    return chosen
