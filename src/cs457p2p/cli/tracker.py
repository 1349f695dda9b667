"""``cs457p2p tracker``: its options, and the process it runs (the tracker, and with
``--http`` or ``--log-level info`` the monitor, the logs and the dashboard beside it; or
``--workers N`` processes)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from ..core.addresses import format_address
from .args import (
    EXIT_OK,
    EXIT_USAGE,
    add_examples,
    address_arg,
    fail,
    load_db,
    port_arg,
    positive_float,
    positive_int,
    probability,
    stderr_tracer,
    trace_arg,
)

if TYPE_CHECKING:
    from ..core.database import Database
    from ..monitoring.dashboard import Dashboard
    from ..tracker.server import Tracker, TrackerConfig

__all__ = ["LoopUnavailable", "add_arguments", "check_loop", "run", "run_loop"]

#: Port of ``--http HOST`` when none is given.
HTTP_PORT = 8080


def _http_arg(text: str) -> tuple[str, int]:
    return address_arg(text, default_port=HTTP_PORT)


def _delay(text: str) -> tuple[float, float]:
    from ..core.faults import parse_delay

    try:
        return parse_delay(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


EXAMPLES = (
    (
        "the built-in 16 items (Part 2: the course's 5) on localhost:7777, TCP and UDP",
        "cs457p2p tracker --port 7777",
    ),
    (
        "your own message (word k is SEQNUM k) on a free port",
        'cs457p2p tracker --port 0 --message "hello from the tracker"',
    ),
    (
        "a database file, to other machines, with a live dashboard",
        "cs457p2p tracker --host 0.0.0.0 --port 7777 --db words.txt --http 127.0.0.1:8080",
    ),
    (
        "lose 20% of the UDP answers, the same ones every run",
        "cs457p2p tracker --port 7777 --loss 0.2 --fault-seed 1",
    ),
)


def add_arguments(t: argparse.ArgumentParser) -> None:
    from ..monitoring.reporting import LOG_FORMATS, LOG_LEVELS

    add_examples(t, EXAMPLES)
    t.add_argument("--host", default="localhost", help="address to listen on (default: localhost)")
    t.add_argument(
        "--course",
        action="store_true",
        help="serve as the course's own trackers do (tracker-p1.py, p2p-tracker.py): one"
        " connection at a time, Python 2's pickles, the course's databases; never dies",
    )
    t.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop: uvloop if installed (the [fast] extra), else asyncio (default: auto)",
    )
    t.add_argument(
        "--port", type=port_arg, default=7777, help="port (default: 7777; 0 takes a free port)"
    )
    src = t.add_mutually_exclusive_group()
    src.add_argument(
        "--db",
        metavar="FILE",
        help="database file: .txt, .json or .csv, for both parts (default: the built-in 16"
        " items for Part 1, the course's 5 for Part 2)",
    )
    src.add_argument(
        "--message", metavar="TEXT", help="serve TEXT, word k as SEQNUM k (both parts)"
    )
    t.add_argument(
        "--shuffle-seed", type=int, metavar="INT", help="make the stored order reproducible"
    )
    t.add_argument(
        "--transport",
        choices=("tcp", "udp", "both"),
        default="both",
        help="serve over TCP, UDP or both, on the same port (default: both)",
    )
    t.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="serve from N processes sharing the port (SO_REUSEPORT, Linux), each with its"
        " own limits and faults; not with --http or --log-level info/debug (default: 1)",
    )
    trace_arg(t)
    limits = t.add_argument_group("limits")
    limits.add_argument(
        "--max-connections",
        type=positive_int,
        default=1024,
        metavar="N",
        help="TCP connections open at once (per worker); when all are taken, the busiest"
        " address gives one up to a newcomer from another (default: 1024)",
    )
    limits.add_argument(
        "--max-per-address",
        type=positive_int,
        default=512,
        metavar="N",
        help="TCP connections open from one address at once (per worker; default: 512)",
    )
    limits.add_argument(
        "--request-timeout",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="drop a connection whose request takes longer to arrive (default: 10)",
    )
    ring = t.add_argument_group("Part 2: peers in a ring (on the same TCP port)")
    ring.add_argument(
        "--ping-interval",
        type=positive_float,
        default=20.0,
        metavar="SECONDS",
        help="PING every peer this often, all at once (at most 128 open, 500 started a"
        " second) (default: 20, as the course's)",
    )
    ring.add_argument(
        "--ping-timeout",
        type=positive_float,
        default=5.0,
        metavar="SECONDS",
        help="a peer that does not answer a PING within this leaves the ring (default: 5)",
    )
    ring.add_argument(
        "--max-peers",
        type=positive_int,
        default=1024,
        metavar="N",
        help="peers in the ring, at most; more are refused (default: 1024)",
    )
    ring.add_argument(
        "--max-peers-per-address",
        type=positive_int,
        default=64,  # (core.ring.PEERS_PER_ADDRESS: not imported, start-up stays light)
        metavar="N",
        help="peers in the ring from one address, at most; raise it for a class behind"
        " one NAT address (default: 64)",
    )
    faults = t.add_argument_group("fault injection (all off by default)")
    faults.add_argument(
        "--loss",
        type=probability,
        default=0.0,
        metavar="P",
        help="drop a request or an answer with probability P (UDP)",
    )
    faults.add_argument(
        "--duplicate",
        type=probability,
        default=0.0,
        metavar="P",
        help="send an answer twice (UDP)",
    )
    faults.add_argument(
        "--reorder",
        type=probability,
        default=0.0,
        metavar="P",
        help="hold an answer back behind later ones (UDP)",
    )
    faults.add_argument(
        "--delay",
        type=_delay,
        default=(0.0, 0.0),
        metavar="MS[:JITTER_MS]",
        help="delay each answer by MS +/- JITTER_MS milliseconds (both)",
    )
    faults.add_argument(
        "--chunk",
        type=positive_int,
        default=0,
        metavar="BYTES",
        help="write each TCP answer in pieces of at most BYTES, 1 ms apart",
    )
    faults.add_argument(
        "--reset",
        type=probability,
        default=0.0,
        metavar="P",
        help="abort a TCP connection instead of answering, with probability P",
    )
    faults.add_argument(
        "--fault-seed", type=int, metavar="INT", help="make the faults reproducible"
    )
    t.add_argument(
        "--idle-timeout",
        type=positive_float,
        default=60.0,
        metavar="SECONDS",
        help="close a connection silent this long (default: 60)",
    )
    watch = t.add_argument_group("dashboard, metrics and logs")
    watch.add_argument(
        "--http",
        type=_http_arg,
        metavar="HOST:PORT",
        help="serve a live dashboard, /metrics and /api/status on HOST:PORT (port 0: a"
        f" free one; default port {HTTP_PORT}); needs the 'dashboard' extra",
    )
    watch.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="log lines on stderr as text or JSON (default: text)",
    )
    watch.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="warning",
        help="info: a line per registration, finished client and refused request, and a"
        " periodic summary (default: warning, which is quiet in normal runs)",
    )
    watch.add_argument(
        "--summary-interval",
        type=positive_float,
        default=60.0,
        metavar="SECONDS",
        help="seconds between two summary log lines (default: 60)",
    )
    watch.add_argument(
        "--track-clients",
        type=positive_int,
        default=1000,
        metavar="N",
        help="client addresses remembered; beyond N the least recently seen is"
        " forgotten (default: 1000)",
    )
    watch.add_argument(
        "--track-memory",
        type=positive_int,
        default=64,
        metavar="MIB",
        help="memory the table of clients may use (a fetching client holds one byte per"
        " item); beyond it the least recently seen are forgotten (default: 64)",
    )


# ------------------------------------------------------------------------- the loop

T = TypeVar("T")


class LoopUnavailable(Exception):
    """The event loop asked for with --loop is not installed."""


_NO_UVLOOP = "--loop uvloop: uvloop is not installed (pip install uvloop)"


def check_loop(loop: str) -> None:
    """Raise LoopUnavailable now, rather than in every worker, if ``loop`` is missing."""
    if loop == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            raise LoopUnavailable(_NO_UVLOOP) from None


def run_loop(main: Coroutine[Any, Any, T], loop: str = "auto") -> T:
    """Run ``main`` on uvloop when asked, or when ``auto`` and it is installed (the
    ``[fast]`` extra); otherwise on asyncio's own loop."""
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                main.close()  # never started: no "never awaited" warning
                raise LoopUnavailable(_NO_UVLOOP) from None
        else:
            return uvloop.run(main)
    import asyncio

    return asyncio.run(main)


# ---------------------------------------------------------------------- the process


def _listening_line(host: str, port: int, items: int, faults: str) -> str:
    """The one line a tracker prints once it serves (tests and scripts wait for it)."""
    extra = f"; faults: {faults}" if faults else ""
    return f"listening on {format_address(host, port)} ({items} items{extra})\n"


#: What a tracker says after its first line when a VALUE is not ASCII. (Its strings go
#: out as unicode, which every Python 3 reader takes; as byte strings, the course's
#: way, plain pickle.loads in Python 3 would refuse them: UnicodeDecodeError.)
NON_ASCII_NOTE = (
    "note: some VALUEs are not ASCII: a Python 2 client or peer gets them as unicode,"
    " and printing them to a pipe or a file fails (UnicodeEncodeError) unless it prints"
    " message.encode('utf-8') or runs with PYTHONIOENCODING=utf-8; Python 3 clients are"
    " not affected\n"
)


class _StartError(Exception):
    """The tracker listens but something it was asked to start alongside cannot."""


async def _serve(tracker: Tracker, args: argparse.Namespace) -> None:
    import asyncio
    import logging

    from ..core.addresses import every_address, reach
    from ..core.feed import FEED_SIZE
    from ..core.monitor import Monitor
    from ..monitoring.reporting import Reporter, setup_logging
    from ..net import host_addresses

    host: str = args.host
    await tracker.start()
    dashboard: Dashboard | None = None
    reporter: Reporter | None = None
    try:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        faults = tracker.config.faults.describe()
        logger = setup_logging(args.log_format, args.log_level)
        log_events = logger.isEnabledFor(logging.INFO)
        if args.http is not None or log_events:
            # Monitoring only when asked for: otherwise the tracker has no observer.
            bound = [ip for ip, _ in tracker.addresses]
            found = host_addresses() if every_address(bound) else []
            students = reach(bound, tracker.port, found)
            monitor = Monitor(
                len(tracker.db),
                time.time,
                max_clients=args.track_clients,
                max_bytes=args.track_memory << 20,
                events=log_events,
                feed=FEED_SIZE if args.http is not None else 0,
                info={
                    "listening": format_address(host, tracker.port),
                    "reach": students.to_json(),
                    "transport": tracker.config.transport,
                    "source": tracker.db.source,
                    "faults": faults,
                    "max_connections": tracker.config.max_connections,
                },
            )
            reporter = Reporter(monitor, logger, tracker.counters, args.summary_interval)
        if args.http is not None:
            assert reporter is not None
            from ..monitoring.dashboard import Dashboard

            keeper = tracker.ring_keeper
            dashboard = Dashboard(
                reporter, tracker.ring, keeper.status if keeper is not None else None
            )
            http_host, http_port = args.http
            try:
                http_port = await dashboard.start(http_host, http_port)
            except OSError as e:
                where = format_address(http_host, http_port)
                raise _StartError(
                    f"cannot serve the dashboard on {where}: {e.strerror or e}"
                ) from None
        if reporter is not None:
            tracker.observer = reporter.observer
            if tracker.ring is not None:
                tracker.ring.listener = reporter.ring_listener
            reporter.start()
        sys.stderr.write(_listening_line(host, tracker.port, len(tracker.db), faults))
        if dashboard is not None:
            sys.stderr.write(f"dashboard on http://{format_address(http_host, http_port)}/\n")
        if not tracker.db.ascii:
            sys.stderr.write(NON_ASCII_NOTE)
        sys.stderr.flush()
        await stop.wait()
    finally:
        if dashboard is not None:
            await dashboard.close()
        await tracker.close()
        if reporter is not None:
            tracker.observer = None
            if tracker.ring is not None:
                tracker.ring.listener = None
            await reporter.close()


def _check_workers(args: argparse.Namespace) -> None:
    """Refuse what several worker processes cannot honour (ValueError: why)."""
    from ..tracker.workers import check_reuse_port

    if args.workers == 1:
        return
    # Each worker sees only the connections the kernel gives it: a dashboard, a
    # client's "finished" or a summary from one of them would be wrong.
    if args.http is not None:
        raise ValueError(
            "--http needs --workers 1: each worker sees only its own share of the clients"
        )
    if args.log_level in ("info", "debug"):
        raise ValueError(
            f"--log-level {args.log_level} needs --workers 1: each worker sees only its own"
            " share of the clients"
        )
    check_reuse_port()
    check_loop(args.loop)


#: What a tracker of several processes says to a Part 2 message (and on start).
RING_OFF = (
    "Part 2 (peers in a ring) is off with --workers: the ring must be kept by one"
    " process; run the tracker without --workers"
)


def _serve_workers(db: Database, config: TrackerConfig, args: argparse.Namespace) -> int:
    """``--workers N``: N processes on one port (``workers.py``); the same one line."""
    from ..tracker.workers import WorkerFailed, bind_worker_sockets, serve_workers

    prog = "cs457p2p tracker"
    try:
        sockets = bind_worker_sockets(config, args.workers)
    except OSError as e:
        where = format_address(args.host, args.port)
        return fail(prog, f"cannot listen on {where}: {e.strerror or e}")
    port = sockets[0][0][0].getsockname()[1]
    line = _listening_line(args.host, port, len(db), config.faults.describe())

    def ready() -> None:
        sys.stderr.write(line)
        sys.stderr.write(f"note: {RING_OFF}\n")
        if not db.ascii:
            sys.stderr.write(NON_ASCII_NOTE)
        sys.stderr.flush()

    def run(main: Coroutine[Any, Any, None]) -> None:
        run_loop(main, args.loop)

    try:
        serve_workers(db, config, sockets, run, ready, prog)
    except WorkerFailed as e:
        return fail(prog, str(e))
    return EXIT_OK


def _ring_db(args: argparse.Namespace) -> Database | None:
    """Part 2's database: the course's 5 items (``blue skies and snowy peaks``, in its
    stored order, so that the ring hosts what the course's tracker hosts) unless
    ``--db`` or ``--message`` names one for both parts (None: the same as Part 1's)."""
    from ..core.course_model import COURSE_P2_DB
    from ..core.database import Database

    if args.db is not None or args.message is not None:
        return None
    return Database(COURSE_P2_DB, "the course's Part 2 database")


def run(args: argparse.Namespace) -> int:
    from ..core.database import DatabaseError
    from ..core.faults import FaultConfig
    from ..tracker.server import Tracker, TrackerConfig
    from ..tracker.workers import WorkersUnavailable

    prog = "cs457p2p tracker"
    if args.course:
        from .course import run_course

        return run_course(args)
    try:
        _check_workers(args)
    except (ValueError, WorkersUnavailable, LoopUnavailable) as e:
        return fail(prog, str(e), EXIT_USAGE)
    if args.http is not None:
        try:
            from ..monitoring import dashboard  # noqa: F401
        except ImportError as e:
            return fail(
                prog,
                "--http needs aiohttp and prometheus_client, the 'dashboard' extra"
                f" (missing module {e.name!r}): pip install aiohttp prometheus_client",
                EXIT_USAGE,
            )
    try:
        db = load_db(args)
    except DatabaseError as e:
        return fail(prog, str(e), EXIT_USAGE)
    try:
        faults = FaultConfig(
            loss=args.loss,
            duplicate=args.duplicate,
            reorder=args.reorder,
            delay_ms=args.delay[0],
            jitter_ms=args.delay[1],
            chunk=args.chunk,
            reset=args.reset,
            seed=args.fault_seed,
        )
    except ValueError as e:
        return fail(prog, str(e), EXIT_USAGE)
    config = TrackerConfig(
        host=args.host,
        port=args.port,
        transport=args.transport,
        idle_timeout=args.idle_timeout,
        request_timeout=args.request_timeout,
        max_connections=args.max_connections,
        max_per_address=args.max_per_address,
        faults=faults,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        max_peers=args.max_peers,
        max_peers_per_address=args.max_peers_per_address,
        ring_off=RING_OFF if args.workers > 1 else "",
        trace=stderr_tracer() if args.trace else None,
    )
    if args.workers > 1:
        return _serve_workers(db, config, args)
    tracker = Tracker(db, config, _ring_db(args))
    try:
        run_loop(_serve(tracker, args), args.loop)
    except LoopUnavailable as e:
        return fail(prog, str(e), EXIT_USAGE)
    except _StartError as e:
        return fail(prog, str(e))
    except OSError as e:
        return fail(
            prog, f"cannot listen on {format_address(args.host, args.port)}: {e.strerror or e}"
        )
    return EXIT_OK
