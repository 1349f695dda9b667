"""The tracker's process, as one call: :func:`serve` takes a :class:`ServeConfig` (the
tracker's settings, where its database comes from, and what runs beside it: the
monitor, the logs and the dashboard with ``http`` or an info log level, or ``workers``
processes) and serves until SIGINT or SIGTERM. The ``tracker`` command parses its
options into a :class:`ServeConfig` and calls it."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from ..core.addresses import format_address
from ..core.monitor import MAX_CLIENT_BYTES, MAX_CLIENTS
from ..monitoring.reporting import LOG_FORMATS, LOG_LEVELS, SUMMARY_INTERVAL
from .config import TrackerConfig

if TYPE_CHECKING:
    from ..core.database import Database
    from ..monitoring.dashboard import Dashboard
    from ..monitoring.reporting import Reporter
    from .server import Tracker

__all__ = [
    "HTTP_PORT",
    "LOOPS",
    "NON_ASCII_NOTE",
    "RING_OFF",
    "ConfigError",
    "LoopUnavailable",
    "ServeConfig",
    "StartError",
    "check_loop",
    "run_loop",
    "serve",
]

#: The event loops a tracker may run on (``auto``: uvloop if installed, else asyncio).
LOOPS = ("auto", "asyncio", "uvloop")
#: The dashboard's port when its address names none.
HTTP_PORT = 8080


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """Everything the ``tracker`` command runs; each default written here (or in the
    dataclass or module it is the default of) and nowhere else."""

    #: the tracker's own settings: addresses, limits, faults, the ring's
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    #: the database: a file (.txt, .json, .csv), or a message (word k is SEQNUM k), for
    #: both parts; neither: the built-in 16 items for Part 1, the course's 5 for Part 2
    db: str | None = None
    message: str | None = None
    #: makes the stored order reproducible
    shuffle_seed: int | None = None
    #: processes sharing the port (SO_REUSEPORT, Linux); Part 2 is off with more than 1
    workers: int = 1
    #: the event loop, one of :data:`LOOPS`
    loop: str = "auto"
    #: where to serve the dashboard, /metrics and /api/status (None: nowhere)
    http: tuple[str, int] | None = None
    #: log lines on stderr: one of ``LOG_FORMATS``, at one of ``LOG_LEVELS``
    log_format: str = "text"
    log_level: str = "warning"
    #: seconds between two summary log lines
    summary_interval: float = SUMMARY_INTERVAL
    #: client addresses remembered, and bytes their table may use
    track_clients: int = MAX_CLIENTS
    track_memory: int = MAX_CLIENT_BYTES

    def __post_init__(self) -> None:
        if self.db is not None and self.message is not None:
            raise ValueError("a database file or a message, not both")
        if self.loop not in LOOPS:
            raise ValueError(f"loop must be one of {', '.join(LOOPS)}")
        if self.log_format not in LOG_FORMATS:
            raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}")


class ConfigError(Exception):
    """The configuration cannot be served as it is (a usage error), said in one line."""


class StartError(Exception):
    """The tracker, or something asked for beside it, cannot start, said in one line."""


# ------------------------------------------------------------------------- the loop

T = TypeVar("T")


class LoopUnavailable(ConfigError):
    """The event loop asked for is not installed."""


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

#: What a tracker of several processes says to a Part 2 message (and on start).
RING_OFF = (
    "Part 2 (peers in a ring) is off with --workers: the ring must be kept by one"
    " process; run the tracker without --workers"
)


def _reporter(tracker: Tracker, config: ServeConfig) -> Reporter | None:
    """The monitor, driven by a reporter, when the dashboard or the logs ask for it
    (otherwise the tracker has no observer)."""
    import logging

    from ..core.addresses import every_address, reach
    from ..core.feed import FEED_SIZE
    from ..core.monitor import Monitor
    from ..monitoring.reporting import Reporter, setup_logging
    from ..net import host_addresses

    logger = setup_logging(config.log_format, config.log_level)
    log_events = logger.isEnabledFor(logging.INFO)
    if config.http is None and not log_events:
        return None
    bound = [ip for ip, _ in tracker.addresses]
    found = host_addresses() if every_address(bound) else []
    students = reach(bound, tracker.port, found)
    monitor = Monitor(
        len(tracker.db),
        time.time,
        max_clients=config.track_clients,
        max_bytes=config.track_memory,
        events=log_events,
        feed=FEED_SIZE if config.http is not None else 0,
        info={
            "listening": format_address(config.tracker.host, tracker.port),
            "reach": students.to_json(),
            "transport": tracker.config.transport,
            "source": tracker.db.source,
            "faults": tracker.config.faults.describe(),
            "max_connections": tracker.config.max_connections,
        },
    )
    return Reporter(monitor, logger, tracker.counters, config.summary_interval)


async def _serve(tracker: Tracker, config: ServeConfig) -> None:
    import asyncio

    host = config.tracker.host
    await tracker.start()
    dashboard: Dashboard | None = None
    reporter: Reporter | None = None
    try:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        reporter = _reporter(tracker, config)
        if config.http is not None:
            assert reporter is not None
            from ..monitoring.dashboard import Dashboard

            keeper = tracker.ring_keeper
            dashboard = Dashboard(
                reporter, tracker.ring, keeper.status if keeper is not None else None
            )
            http_host, http_port = config.http
            try:
                http_port = await dashboard.start(http_host, http_port)
            except OSError as e:
                where = format_address(http_host, http_port)
                raise StartError(
                    f"cannot serve the dashboard on {where}: {e.strerror or e}"
                ) from None
        if reporter is not None:
            tracker.observer = reporter.observer
            if tracker.ring is not None:
                tracker.ring.listener = reporter.ring_listener
            reporter.start()
        faults = tracker.config.faults.describe()
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


def _check(config: ServeConfig) -> None:
    """Refuse what cannot be served (ConfigError: why)."""
    from .workers import WorkersUnavailable, check_reuse_port

    if config.workers > 1:
        # Each worker sees only the connections the kernel gives it: a dashboard, a
        # client's "finished" or a summary from one of them would be wrong.
        if config.http is not None:
            raise ConfigError(
                "--http needs --workers 1: each worker sees only its own share of the clients"
            )
        if config.log_level in ("info", "debug"):
            raise ConfigError(
                f"--log-level {config.log_level} needs --workers 1: each worker sees only"
                " its own share of the clients"
            )
        try:
            check_reuse_port()
        except WorkersUnavailable as e:
            raise ConfigError(str(e)) from None
        check_loop(config.loop)
    if config.http is not None:
        try:
            from ..monitoring import dashboard  # noqa: F401
        except ImportError as e:
            raise ConfigError(
                "--http needs aiohttp and prometheus_client, the 'dashboard' extra"
                f" (missing module {e.name!r}): pip install aiohttp prometheus_client"
            ) from None


def _database(config: ServeConfig) -> Database:
    """The database the config names (else the built-in one), in the order its seed
    makes (ConfigError: why it cannot be read)."""
    from ..core.database import Database, DatabaseError

    try:
        return Database.chosen(config.db, config.message, config.shuffle_seed)
    except DatabaseError as e:
        raise ConfigError(str(e)) from None


def _ring_db(config: ServeConfig) -> Database | None:
    """Part 2's database: the course's 5 items (``blue skies and snowy peaks``, in its
    stored order, so that the ring hosts what the course's tracker hosts) unless the
    config names one for both parts (None: the same as Part 1's)."""
    from ..core.course_model import COURSE_P2_DB
    from ..core.database import Database

    if config.db is not None or config.message is not None:
        return None
    return Database(COURSE_P2_DB, "the course's Part 2 database")


def _serve_workers(db: Database, config: ServeConfig) -> None:
    """``workers`` processes on one port (``workers.py``); the same one line."""
    from .workers import WorkerFailed, bind_worker_sockets, serve_workers

    tracker = replace(config.tracker, ring_off=RING_OFF)
    try:
        sockets = bind_worker_sockets(tracker, config.workers)
    except OSError as e:
        where = format_address(tracker.host, tracker.port)
        raise StartError(f"cannot listen on {where}: {e.strerror or e}") from None
    port = sockets[0][0][0].getsockname()[1]
    line = _listening_line(tracker.host, port, len(db), tracker.faults.describe())

    def ready() -> None:
        sys.stderr.write(line)
        sys.stderr.write(f"note: {RING_OFF}\n")
        if not db.ascii:
            sys.stderr.write(NON_ASCII_NOTE)
        sys.stderr.flush()

    def run(main: Coroutine[Any, Any, None]) -> None:
        run_loop(main, config.loop)

    try:
        serve_workers(db, tracker, sockets, run, ready)
    except WorkerFailed as e:
        raise StartError(str(e)) from None


def serve(config: ServeConfig) -> None:
    """Serve as ``config`` says until SIGINT or SIGTERM. Raises :class:`ConfigError`
    (before anything starts) or :class:`StartError` (something could not start, or a
    worker failed), each with its one line."""
    from .server import Tracker

    _check(config)
    db = _database(config)
    if config.workers > 1:
        _serve_workers(db, config)
        return
    tracker = Tracker(db, config.tracker, _ring_db(config))
    try:
        run_loop(_serve(tracker, config), config.loop)
    except OSError as e:
        where = format_address(config.tracker.host, config.tracker.port)
        raise StartError(f"cannot listen on {where}: {e.strerror or e}") from None
