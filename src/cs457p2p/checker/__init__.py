"""The conformance checker and autograder.

* :mod:`.tracker_checks`: ``check tracker``, named checks against a running tracker;
* :mod:`.client_checks`: ``check client``, a client run against trackers started here,
  one per scenario (:mod:`.scenarios`), among them the course's own tracker
  (:mod:`.course_client`, :mod:`cs457p2p.tracker.course`);
* :mod:`.links`: how the checks reach a tracker; :mod:`.runner`: how a student's
  program is run; :mod:`.report`: the results, as a table or JSON.
"""

from __future__ import annotations

from .client_checks import ClientCommandError, check_client, run_client_checks
from .report import CheckResult, Report
from .scenarios import CLIENT_SCENARIOS, Scenario
from .tracker_checks import check_tracker, run_tracker_checks

__all__ = [
    "CLIENT_SCENARIOS",
    "CheckResult",
    "ClientCommandError",
    "Report",
    "Scenario",
    "check_client",
    "check_tracker",
    "run_client_checks",
    "run_tracker_checks",
]
