"""The checker's judges: pure functions from what was observed of a student's program
(a :mod:`.transcript`: the bytes of each connection and when they came, what it
printed, how it ended) to named check results. No sockets, no processes, no clock: the
checker's I/O only records the transcript, and each student mistake is a unit test of
the judge that names it.

* :mod:`.printed`: whether the items were printed in their logical order, and how;
* :mod:`.pacing`: the pause between item requests the assignments ask for;
* :mod:`.hw08`: the Part 1 client assignment (HW08), as the course's tracker sees it;
* :mod:`.peer`: ``check peer``, a Part 2 peer's run (a :mod:`.peer_transcript`) against
  the tracker and neighbours the checker played, by this project's rules or HW09;
* :mod:`.ring_tracker`: a Part 2 tracker's ring (``check tracker --part 2``), as the
  peers the checker played met it;
* :mod:`.tracker`: a Part 1 tracker (``check tracker``), from what each request the
  checker sent it got (a :mod:`.tracker_transcript`, read by :mod:`.tracker_answers`).
"""

from __future__ import annotations

from .hw08 import HW08_REQUIRED, judge_hw08
from .pacing import MIN_PAUSE, pauses
from .printed import Printed, printed_in_order
from .ring_tracker import judge_ring_tracker
from .tracker import judge_tracker
from .tracker_transcript import Asked, BadRequest, ClientRun, Serves, TrackerTranscript
from .transcript import (
    Arrival,
    ClientTranscript,
    Connection,
    Exchange,
    PingWatch,
    ProgramRun,
    RingPeer,
    RingTrackerTranscript,
)

__all__ = [
    "HW08_REQUIRED",
    "MIN_PAUSE",
    "Arrival",
    "Asked",
    "BadRequest",
    "ClientRun",
    "ClientTranscript",
    "Connection",
    "Exchange",
    "PingWatch",
    "Printed",
    "ProgramRun",
    "RingPeer",
    "RingTrackerTranscript",
    "Serves",
    "TrackerTranscript",
    "judge_hw08",
    "judge_ring_tracker",
    "judge_tracker",
    "pauses",
    "printed_in_order",
]
