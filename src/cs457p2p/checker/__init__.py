"""The conformance checker and autograder.

* :mod:`.tracker_checks`: ``check tracker``, named checks against a running tracker;
* :mod:`.client_checks`: ``check client``, a client run against trackers started here,
  one per scenario (:mod:`.scenarios`), among them the course's own tracker
  (:mod:`.course_client`, :mod:`cs457p2p.tracker.course`);
* :mod:`.links`: how the checks reach a tracker; :mod:`.runner`: how a student's
  program is run; :mod:`.report`: the results, as a table or JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.lazy import lazy_exports

# Imported on first use (PEP 562): the command line reads the tables of
# :mod:`.scenarios` and :mod:`.profiles` to build its options, and must not pay for the
# whole checker (the tracker, asyncio...) to print a help text.
_HOMES = {
    "CLIENT_SCENARIOS": "scenarios",
    "CheckResult": "report",
    "ClientCommandError": "client_checks",
    "Report": "report",
    "Scenario": "scenarios",
    "check_client": "client_checks",
    "check_tracker": "tracker_checks",
    "run_client_checks": "client_checks",
    "run_tracker_checks": "tracker_checks",
}

if TYPE_CHECKING:
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


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())
