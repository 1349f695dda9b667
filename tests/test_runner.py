"""``cs457p2p.checker.runner``: how a student's program is run (its process tree, its
output and its end are covered with the checker's tests in test_checker.py; here what
only shows with several programs at once)."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from cs457p2p.checker.runner import run_command

BUSY = "while True:\n    pass"


def test_programs_killed_at_once_leave_the_child_watcher_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three busy programs killed at their timeout, at once, and three that exit with
    their own codes: each exit is reported by asyncio's child watcher, none reaped
    under it (it would log "Unknown child process" and report exit code 255)."""

    async def rounds() -> list[list[int | None]]:
        exits = []
        for _ in range(12):
            killed = await asyncio.gather(
                *(run_command([sys.executable, "-c", BUSY], 0.2) for _ in range(3))
            )
            assert all(run.timed_out for run in killed)
            done = await asyncio.gather(
                *(
                    run_command([sys.executable, "-c", f"import sys; sys.exit({k})"], 30)
                    for k in (0, 3, 7)
                )
            )
            exits.append([run.exit for run in done])
        return exits

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        exits = asyncio.run(rounds())
    assert exits == [[0, 3, 7]] * 12
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
