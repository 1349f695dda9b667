"""The course's assignments the checker can judge by (``--assignment``), by name: a table
of its own, so that the command line can offer them without importing the checker.
What each one runs is in :mod:`.assignments`, its rules in :mod:`.judges`."""

from __future__ import annotations

__all__ = [
    "ASSIGNMENTS",
    "CLIENT_ASSIGNMENTS",
    "HW08_TIMEOUT",
    "PEER_ASSIGNMENTS",
    "TRACKER_ASSIGNMENTS",
]

ASSIGNMENTS = {
    "hw08": "HW08, the Part 1 client, as the course's tracker-p1.py meets it",
    "hw09": "HW09, the Part 2 peer, as the course's p2p-tracker.py and sample peer meet it",
    "p2": "the course's Part 2 tracker program (p2p-tracker.py): what a course peer needs",
}
CLIENT_ASSIGNMENTS = ("hw08",)
PEER_ASSIGNMENTS = ("hw09",)
TRACKER_ASSIGNMENTS = ("p2",)
#: Seconds a client's run may take under HW08: 16 items at the assignment's 2-3 s each,
#: with room.
HW08_TIMEOUT = 120.0
