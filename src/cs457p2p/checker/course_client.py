"""A client run against the course's Part 1 tracker (:class:`~cs457p2p.tracker.course.
CourseTracker`: one connection at a time, Python 2's pickles), recorded as a
:class:`~.judges.transcript.ClientTranscript` for the judges. In a sandbox's own network
the tracker also listens at the course's written-in address, ``127.0.0.1:7777`` (and
``[::1]:7777``), and ``{port}`` is 7777: a client with ``localhost:7777`` in its code is
checked like any other."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..tracker.course import CourseTracker
from .judges.transcript import ClientTranscript, Connection, ProgramRun
from .runner import run_command, substitute
from .sandbox import Jail

__all__ = ["COURSE_PORT", "Place", "course_run"]

#: The course's tracker address: ``localhost``, port 7777.
COURSE_PORT = 7777


@dataclass(frozen=True)
class Place:
    """Where a client runs: its working folder, the file that keeps its output, and its
    sandbox (None: none)."""

    cwd: Path | None = None
    log: Path | None = None
    jail: Jail | None = None


async def _course_tracker(stored: Sequence[tuple[int, str]], isolated: bool) -> CourseTracker:
    """The course's tracker, listening at 127.0.0.1:7777 and [::1]:7777 where the network
    is the check's own (127.0.0.1 alone where there is no IPv6 loopback), else on a free
    port of 127.0.0.1."""
    if not isolated:
        tracker = CourseTracker("127.0.0.1", 0, stored, ping_interval=0)
        await tracker.start()
        return tracker
    both = CourseTracker(
        "127.0.0.1", COURSE_PORT, stored, ping_interval=0, also=(("::1", COURSE_PORT),)
    )
    try:
        await both.start()
        return both
    except OSError:
        await both.close()
    tracker = CourseTracker("127.0.0.1", COURSE_PORT, stored, ping_interval=0)
    await tracker.start()
    return tracker


async def course_run(
    scenario: str,
    command: Sequence[str],
    stored: Sequence[tuple[int, str]],
    timeout: float,
    place: Place,
) -> ClientTranscript:
    """Run the client ``command`` once against the course's tracker serving ``stored``,
    for at most ``timeout`` seconds, and say what happened."""
    loop = asyncio.get_running_loop()
    tracker = await _course_tracker(stored, place.jail is not None)
    try:
        argv = substitute(command, {"host": "127.0.0.1", "port": tracker.port, "transport": "tcp"})
        if place.log is not None:
            with place.log.open("a", encoding="utf-8") as f:
                f.write(f"\n== {scenario} (the course's tracker, {len(stored)} items)\n")
        start = loop.time()
        run = await run_command(argv, timeout, cwd=place.cwd, log=place.log, jail=place.jail)
    finally:
        await tracker.close()
    connections = tuple(
        Connection(
            e.accepted - start,
            e.data,
            None if e.read_at is None else e.read_at - start,
            e.reply,
        )
        for e in tracker.exchanges
    )
    program = ProgramRun(
        run.exit, run.timed_out, run.seconds, run.stdout, run.stderr, run.limit, run.setup_error
    )
    address = f"127.0.0.1:{tracker.port}"
    return ClientTranscript(scenario, address, tuple(stored), connections, program, timeout)
