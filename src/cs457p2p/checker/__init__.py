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
# whole checker (the tracker, asyncio...) to print a help text. Listed twice, as at the
# package root (mypy cannot follow a lazy import): tests/test_package.py holds the
# TYPE_CHECKING block to _HOMES, and __all__ is made from _HOMES.
_HOMES: dict[str, tuple[str, ...]] = {
    "client_checks": ("ClientCommandError", "check_client", "run_client_checks"),
    "report": ("CheckResult", "Report"),
    "scenarios": ("CLIENT_SCENARIOS", "Scenario"),
    "tracker_checks": ("check_tracker", "run_tracker_checks"),
}

if TYPE_CHECKING:
    from .client_checks import ClientCommandError as ClientCommandError
    from .client_checks import check_client as check_client
    from .client_checks import run_client_checks as run_client_checks
    from .report import CheckResult as CheckResult
    from .report import Report as Report
    from .scenarios import CLIENT_SCENARIOS as CLIENT_SCENARIOS
    from .scenarios import Scenario as Scenario
    from .tracker_checks import check_tracker as check_tracker
    from .tracker_checks import run_tracker_checks as run_tracker_checks

_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

if not TYPE_CHECKING:  # (hidden from mypy, so that a name not listed is an error there)
    __getattr__, __dir__ = lazy_exports(__name__, _HOME_OF, globals())

__all__ = sorted(_HOME_OF)
