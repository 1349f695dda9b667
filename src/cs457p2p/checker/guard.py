"""What keeps the checker standing whatever the program it checks does: the trackers,
peers and neighbours it plays for one run take at most :data:`MAX_CONNECTIONS`
connections at a time between them (more are closed at once and counted: with
``--jobs 2`` that stays far below the usual 1,024 open files), and an event loop's
unexpected errors
(``accept()`` out of open files, a connection reset under a write...) are counted by
kind, never printed as tracebacks; a report then says what happened in one row."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from ..net import loop_error_kind
from .report import CheckResult

__all__ = ["MAX_CONNECTIONS", "Guard"]

#: Connections the parts played for one run (tracker, peers, neighbours) serve at a time.
MAX_CONNECTIONS = 256


def _kind(context: dict[str, Any]) -> str:
    return loop_error_kind(context, "error in the checker")


class Guard:
    """Installed on the loop that runs the checks: counts the loop's unexpected errors
    (:meth:`handle`) and the connections the played parts turned away
    (:attr:`turned_away`)."""

    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()
        self.turned_away = 0
        self.open = 0

    def admit(self) -> bool:
        """Take one connection (True), or count it turned away (False): :meth:`release`
        it when it ends."""
        if self.open >= MAX_CONNECTIONS:
            self.turned_away += 1
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1

    @classmethod
    def install(cls) -> Guard:
        """A guard on the running loop (its exception handler)."""
        guard = cls()
        asyncio.get_running_loop().set_exception_handler(guard.handle)
        return guard

    def handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.errors[_kind(context)] += 1

    def result(self) -> CheckResult | None:
        """An INFO row when anything was counted (None otherwise)."""
        if not self.errors and not self.turned_away:
            return None
        parts = [f"{n:,} {kind}" for kind, n in self.errors.most_common()]
        if self.turned_away:
            parts.insert(
                0,
                f"{self.turned_away:,} connections over {MAX_CONNECTIONS} at a time to the"
                " parts the checker plays were closed at once",
            )
        return CheckResult("checker-load", False, True, "; ".join(parts))
