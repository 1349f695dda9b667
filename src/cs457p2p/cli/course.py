"""``cs457p2p tracker --course``: the course's trackers, as the course's programs serve
them (one connection at a time, Python 2's protocol 0 pickles, their refusals), for
students to test against by hand; with the restricted decoder, and never dying."""

from __future__ import annotations

import argparse
import sys

from ..core.addresses import format_address
from .args import EXIT_OK, EXIT_USAGE, fail, load_db, stderr_tracer

__all__ = ["run_course"]


def _refused(args: argparse.Namespace) -> str | None:
    """The option that --course cannot take, or None."""
    if args.workers > 1:
        return "--workers (the course's tracker is one process serving one connection at a time)"
    if args.http is not None:
        return "--http (the dashboard follows this project's tracker only)"
    if args.transport == "udp":
        return "--transport udp (the course's tracker is TCP only)"
    faults = (args.loss, args.duplicate, args.reorder, args.delay[0], args.chunk, args.reset)
    if any(faults):
        return "fault injection (the course's tracker answers as it does)"
    return None


def run_course(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from ..core.course_model import COURSE_P1_DB, COURSE_P2_DB
    from ..core.database import DatabaseError
    from ..tracker.course import CourseTracker

    prog = "cs457p2p tracker --course"
    refused = _refused(args)
    if refused is not None:
        return fail(prog, f"--course does not take {refused}", EXIT_USAGE)
    p1, p2 = COURSE_P1_DB, COURSE_P2_DB
    if args.db is not None or args.message is not None:
        try:
            p1 = p2 = tuple(load_db(args).items)
        except DatabaseError as e:
            return fail(prog, str(e), EXIT_USAGE)

    def log(line: str) -> None:
        sys.stderr.write(f"course: {line}\n")
        sys.stderr.flush()

    tracker = CourseTracker(
        args.host,
        args.port,
        p1,
        p2,
        ping_interval=args.ping_interval,
        read_timeout=args.request_timeout,
        log=log,
        trace=stderr_tracer() if args.trace else None,
    )

    async def serve() -> None:
        await tracker.start()
        sys.stderr.write(
            f"listening on {format_address(args.host, tracker.port)} ({len(p1)} items)\n"
        )
        sys.stderr.write(
            f"course mode: as the course's tracker-p1.py and p2p-tracker.py ({len(p2)} items"
            " for Part 2): one connection at a time, one read of 1,024 bytes, Python 2's"
            " pickles; what they would crash on or run is said here, not done\n"
        )
        sys.stderr.flush()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await tracker.close()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as e:
        where = format_address(args.host, args.port)
        return fail(prog, f"cannot listen on {where}: {e.strerror or e}")
    return EXIT_OK
