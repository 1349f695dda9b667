"""The ``cs457p2p`` command: ``tracker``, ``client``, ``demo`` and ``check``.

Errors are one line on stderr: exit 2 for usage and configuration errors (bad flags, a
bad database), 1 for failures at run time (connection refused, a lying tracker...).
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import sys
import time
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar

from . import __version__
from .protocol import format_address

# Each command imports what it runs, when it runs: a TCP client loads neither asyncio
# nor the tracker, the checker or the benchmark (against a reference-style tracker,
# start-up is a twentieth of a run). See build_parser for the options.
if TYPE_CHECKING:
    from .checker import Report
    from .client import FetchResult
    from .dashboard import Dashboard
    from .database import Database
    from .tracker import Tracker, TrackerConfig

__all__ = ["main", "parse_address"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
#: Port of ``--http HOST`` when none is given.
HTTP_PORT = 8080


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus exit code 2), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_address(text: str, default_port: int = 7777) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT``, ``HOST`` or ``:PORT`` -> ``(host, port)``."""
    host, port_text = text, ""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"bad address {text!r}: missing ']'")
        host, rest = text[1:close], text[close + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"bad address {text!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:
        raise ValueError(f"bad address {text!r}: write an IPv6 address as [ADDR]:PORT")
    host = host or "localhost"
    if not port_text:
        return host, default_port
    port = _port(port_text)
    return host, port


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"bad port {text!r}: not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"bad port {port}: must be 0..65535")
    return port


def _address_arg(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _http_arg(text: str) -> tuple[str, int]:
    try:
        return parse_address(text, default_port=HTTP_PORT)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _port_arg(text: str) -> int:
    try:
        return _port(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a probability in 0..1")
    return value


def _delay(text: str) -> tuple[float, float]:
    try:
        from .faults import parse_delay

        return parse_delay(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


LOOP_ARGS = ("--loop",)
LOOP_KWARGS: dict[str, Any] = {
    "choices": ("auto", "asyncio", "uvloop"),
    "default": "auto",
    "help": "event loop: uvloop if installed (the [fast] extra), else asyncio (default: auto)",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``cs457p2p`` parser. With ``command``, only that command's options are filled
    in (the others keep their one-line help): running a command then imports nothing
    that only another command's options need."""
    parser = _Parser(
        prog="cs457p2p",
        description="The cs457 P2P protocol: a safe, concurrent tracker and client.",
    )
    parser.add_argument("--version", action="version", version=f"cs457p2p {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    t = sub.add_parser(
        "tracker",
        help="serve a database of items",
        description="Serve a shuffled database of items (Part 1).",
    )
    if command in (None, "tracker"):
        from .reporting import LOG_FORMATS, LOG_LEVELS

        t.add_argument(
            "--host", default="localhost", help="address to listen on (default: localhost)"
        )
        t.add_argument(*LOOP_ARGS, **LOOP_KWARGS)
        t.add_argument(
            "--port", type=_port_arg, default=7777, help="port (default: 7777; 0 takes a free port)"
        )
        src = t.add_mutually_exclusive_group()
        src.add_argument(
            "--db",
            metavar="FILE",
            help="database file: .txt, .json or .csv (default: the built-in 16 items)",
        )
        src.add_argument("--message", metavar="TEXT", help="serve TEXT, word k as SEQNUM k")
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
            type=_positive_int,
            default=1,
            metavar="N",
            help="serve from N processes sharing the port (SO_REUSEPORT, Linux), each with its"
            " own limits and faults; not with --http or --log-level info/debug (default: 1)",
        )
        limits = t.add_argument_group("limits")
        limits.add_argument(
            "--max-connections",
            type=_positive_int,
            default=1024,
            metavar="N",
            help="TCP connections open at once (per worker); more are closed at once"
            " (default: 1024)",
        )
        limits.add_argument(
            "--request-timeout",
            type=_positive_float,
            default=10.0,
            metavar="SECONDS",
            help="drop a connection whose request takes longer to arrive (default: 10)",
        )
        faults = t.add_argument_group("fault injection (all off by default)")
        faults.add_argument(
            "--loss",
            type=_probability,
            default=0.0,
            metavar="P",
            help="drop a request or an answer with probability P (UDP)",
        )
        faults.add_argument(
            "--duplicate",
            type=_probability,
            default=0.0,
            metavar="P",
            help="send an answer twice (UDP)",
        )
        faults.add_argument(
            "--reorder",
            type=_probability,
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
            type=_positive_int,
            default=0,
            metavar="BYTES",
            help="write each TCP answer in pieces of at most BYTES, 1 ms apart",
        )
        faults.add_argument(
            "--reset",
            type=_probability,
            default=0.0,
            metavar="P",
            help="abort a TCP connection instead of answering, with probability P",
        )
        faults.add_argument(
            "--fault-seed", type=int, metavar="INT", help="make the faults reproducible"
        )
        t.add_argument(
            "--idle-timeout",
            type=_positive_float,
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
            type=_positive_float,
            default=60.0,
            metavar="SECONDS",
            help="seconds between two summary log lines (default: 60)",
        )
        watch.add_argument(
            "--track-clients",
            type=_positive_int,
            default=1000,
            metavar="N",
            help="client addresses remembered; beyond N the least recently seen is"
            " forgotten (default: 1000)",
        )

    c = sub.add_parser(
        "client",
        help="collect every item and print the message",
        description="Register, collect every item and print the assembled message.",
    )
    if command in (None, "client"):
        c.add_argument(
            "--tracker",
            type=_address_arg,
            default=("localhost", 7777),
            metavar="HOST:PORT",
            help="tracker address (default: localhost:7777)",
        )
        c.add_argument(
            "--transport",
            choices=("tcp", "udp"),
            default="tcp",
            help="fetch over TCP or UDP (default: tcp)",
        )
        c.add_argument(
            "--timeout",
            type=_positive_float,
            default=10.0,
            metavar="SECONDS",
            help="give up when a connection or an answer takes longer (default: 10)",
        )
        c.add_argument(
            "--bind", metavar="ADDR", help="local address to connect from, e.g. 127.0.0.2"
        )
        c.add_argument(
            "--max-items",
            type=_positive_int,
            default=10_000_000,
            metavar="N",
            help="refuse a database larger than N items (default: 10000000)",
        )
        c.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
        c.add_argument(
            "--verbose", "-v", action="store_true", help="print connection statistics on stderr"
        )

    b = sub.add_parser(
        "bench",
        help="measure full client sessions against a tracker",
        description="Run C concurrent full client sessions (register, fetch every item,"
        " assemble, check every message against the first), R rounds, in one process;"
        " print items/s and session times. Without --tracker, start a tracker in another"
        " process on 127.0.0.1 serving --items generated words.",
    )
    if command in (None, "bench"):
        b.add_argument(
            "--tracker", type=_address_arg, metavar="HOST:PORT", help="an existing tracker"
        )
        b.add_argument(
            "--clients",
            type=_positive_int,
            default=1,
            metavar="C",
            help="concurrent sessions (default: 1)",
        )
        b.add_argument(
            "--repeat", type=_positive_int, default=3, metavar="R", help="rounds (default: 3)"
        )
        b.add_argument(
            "--items",
            type=_positive_int,
            default=100_000,
            metavar="N",
            help="items of the started tracker (default: 100000)",
        )
        b.add_argument(
            "--timeout",
            type=_positive_float,
            default=60.0,
            metavar="SECONDS",
            help="per network step (default: 60)",
        )

    sub.add_parser(
        "demo",
        help="run a tracker and a client in one process",
        description="Start a tracker with the built-in database on a free port and run"
        " the client against it.",
    )

    k = sub.add_parser(
        "check",
        help="check someone else's tracker or client (conformance, grading)",
        description="Run named conformance checks against a tracker, or run a client"
        " against trackers started here. Exit 0 when every required check passes, 1 when"
        " one fails, 2 for a usage error.",
    )
    if command in (None, "check"):
        from .scenarios import CLIENT_SCENARIOS

        ksub = k.add_subparsers(dest="check_command", metavar="WHAT", parser_class=_Parser)
        ksub.required = True
        kt = ksub.add_parser(
            "tracker",
            help="check a running tracker",
            description="Talk to the tracker at HOST:PORT as clients would and report each"
            " property of the protocol as a named check.",
        )
        kt.add_argument("address", type=_address_arg, metavar="HOST:PORT", help="the tracker")
        kt.add_argument(
            "--transport",
            choices=("tcp", "udp"),
            default="tcp",
            help="run the checks over TCP or UDP (default: tcp)",
        )
        kt.add_argument(
            "--timeout",
            type=_positive_float,
            default=5.0,
            metavar="SECONDS",
            help="longest wait for one answer (default: 5)",
        )
        kt.add_argument("--json", action="store_true", help="print one JSON object, not a table")
        kc = ksub.add_parser(
            "client",
            help="run a client against trackers started here",
            usage="cs457p2p check client [-h] [--transport {tcp,udp}] [--timeout SECONDS]"
            " [--json]\n                             [--scenario NAME] [--seed INT]"
            " -- COMMAND [ARGS...]",
            description="Run COMMAND (no shell) once per scenario against a tracker started on a\n"
            "free port of 127.0.0.1, with {host}, {port} and {transport} in its arguments\n"
            "replaced. It passes a scenario when its stdout holds that scenario's random\n"
            "message (a fresh one each time) and it exits within the timeout.",
            epilog="scenarios:\n"
            + "\n".join(
                f"  {s.name:<20} {s.description}"
                + ("" if len(s.transports) > 1 else f" ({s.transports[0].upper()} only)")
                for s in CLIENT_SCENARIOS
            ),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        kc.add_argument(
            "--transport",
            choices=("tcp", "udp"),
            default="tcp",
            help="the scenarios for a TCP or a UDP client (default: tcp)",
        )
        kc.add_argument(
            "--timeout",
            type=_positive_float,
            default=20.0,
            metavar="SECONDS",
            help="longest run of the client in one scenario (default: 20)",
        )
        kc.add_argument("--json", action="store_true", help="print one JSON object, not a table")
        kc.add_argument(
            "--scenario",
            action="append",
            choices=[s.name for s in CLIENT_SCENARIOS],
            metavar="NAME",
            help="run only this scenario (repeatable; default: all for the transport)",
        )
        kc.add_argument(
            "--seed",
            type=int,
            metavar="INT",
            help="make the secrets, shuffles and faults reproducible",
        )
        kc.add_argument(
            "client_command",
            nargs="*",
            metavar="COMMAND",
            help="after --: the client to run, e.g. -- python3 client.py {host} {port}",
        )
    return parser


# ------------------------------------------------------------------------- progress


class _ProgressReporter:
    """A progress bar on a terminal; elsewhere a line every few seconds of a long fetch."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.start = time.monotonic()
        self.last = self.start
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.tty:
            if now - self.last < 0.1 and done < total:
                return
            self.last = now
            width = 30
            filled = width * done // total if total else width
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} items")
            self.stream.flush()
            self.shown = True
        elif now - self.last >= 2.0:
            self.last = now
            self.stream.write(f"fetched {done}/{total} items\n")
            self.stream.flush()

    def finish(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\n")
            self.stream.flush()


# ------------------------------------------------------------------------- commands


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


def _fail(prog: str, message: str, code: int = EXIT_FAILURE) -> int:
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.stderr.flush()
    return code


def _load_db(args: argparse.Namespace) -> Database:
    from .database import Database

    if args.db is not None:
        return Database.from_file(args.db, args.shuffle_seed)
    if args.message is not None:
        return Database.from_message(args.message, args.shuffle_seed)
    return Database.default(args.shuffle_seed)


def _listening_line(host: str, port: int, items: int, faults: str) -> str:
    """The one line a tracker prints once it serves (tests and scripts wait for it)."""
    extra = f"; faults: {faults}" if faults else ""
    return f"listening on {format_address(host, port)} ({items} items{extra})\n"


class _StartError(Exception):
    """The tracker listens but something it was asked to start alongside cannot."""


async def _serve(tracker: Tracker, args: argparse.Namespace) -> None:
    import asyncio
    import logging

    from .monitor import Monitor
    from .reporting import Reporter, setup_logging

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
            monitor = Monitor(
                len(tracker.db),
                time.time,
                max_clients=args.track_clients,
                events=log_events,
                info={
                    "listening": format_address(host, tracker.port),
                    "transport": tracker.config.transport,
                    "source": tracker.db.source,
                    "faults": faults,
                    "max_connections": tracker.config.max_connections,
                },
            )
            reporter = Reporter(tracker, monitor, logger, args.summary_interval)
        if args.http is not None:
            assert reporter is not None
            from .dashboard import Dashboard

            dashboard = Dashboard(reporter)
            http_host, http_port = args.http
            try:
                http_port = await dashboard.start(http_host, http_port)
            except OSError as e:
                where = format_address(http_host, http_port)
                raise _StartError(
                    f"cannot serve the dashboard on {where}: {e.strerror or e}"
                ) from None
        if reporter is not None:
            reporter.start()
        sys.stderr.write(_listening_line(host, tracker.port, len(tracker.db), faults))
        if dashboard is not None:
            sys.stderr.write(f"dashboard on http://{format_address(http_host, http_port)}/\n")
        sys.stderr.flush()
        await stop.wait()
    finally:
        if dashboard is not None:
            await dashboard.close()
        await tracker.close()
        if reporter is not None:
            await reporter.close()


def _check_workers(args: argparse.Namespace) -> None:
    """Refuse what several worker processes cannot honour (ValueError: why)."""
    from .workers import check_reuse_port

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


def _serve_workers(db: Database, config: TrackerConfig, args: argparse.Namespace) -> int:
    """``--workers N``: N processes on one port (``workers.py``); the same one line."""
    from .workers import WorkerFailed, bind_worker_sockets, serve_workers

    prog = "cs457p2p tracker"
    try:
        sockets = bind_worker_sockets(config, args.workers)
    except OSError as e:
        where = format_address(args.host, args.port)
        return _fail(prog, f"cannot listen on {where}: {e.strerror or e}")
    port = sockets[0][0][0].getsockname()[1]
    line = _listening_line(args.host, port, len(db), config.faults.describe())

    def ready() -> None:
        sys.stderr.write(line)
        sys.stderr.flush()

    def run(main: Coroutine[Any, Any, None]) -> None:
        run_loop(main, args.loop)

    try:
        serve_workers(db, config, sockets, run, ready, prog)
    except WorkerFailed as e:
        return _fail(prog, str(e))
    return EXIT_OK


def run_tracker(args: argparse.Namespace) -> int:
    from .database import DatabaseError
    from .faults import FaultConfig
    from .tracker import Tracker, TrackerConfig
    from .workers import WorkersUnavailable

    prog = "cs457p2p tracker"
    try:
        _check_workers(args)
    except (ValueError, WorkersUnavailable, LoopUnavailable) as e:
        return _fail(prog, str(e), EXIT_USAGE)
    if args.http is not None:
        try:
            from . import dashboard  # noqa: F401
        except ImportError as e:
            return _fail(
                prog,
                "--http needs aiohttp and prometheus_client, the 'dashboard' extra"
                f" (missing module {e.name!r}): pip install aiohttp prometheus_client",
                EXIT_USAGE,
            )
    try:
        db = _load_db(args)
    except DatabaseError as e:
        return _fail(prog, str(e), EXIT_USAGE)
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
        return _fail(prog, str(e), EXIT_USAGE)
    config = TrackerConfig(
        host=args.host,
        port=args.port,
        transport=args.transport,
        idle_timeout=args.idle_timeout,
        request_timeout=args.request_timeout,
        max_connections=args.max_connections,
        faults=faults,
    )
    if args.workers > 1:
        return _serve_workers(db, config, args)
    tracker = Tracker(db, config)
    try:
        run_loop(_serve(tracker, args), args.loop)
    except LoopUnavailable as e:
        return _fail(prog, str(e), EXIT_USAGE)
    except _StartError as e:
        return _fail(prog, str(e))
    except OSError as e:
        return _fail(
            prog, f"cannot listen on {format_address(args.host, args.port)}: {e.strerror or e}"
        )
    return EXIT_OK


def _report(result: FetchResult, verbose: bool) -> None:
    if verbose:
        if result.transport == "udp":
            what = f"UDP from {result.connections} sockets"
        else:
            style = "one request per connection" if result.reference_style else "pipelined"
            what = f"{result.connections} connections ({style})"
        sys.stderr.write(f"fetched {result.n} items over {what}\n")
    sys.stdout.write(result.message + "\n")
    sys.stdout.flush()


def run_client(args: argparse.Namespace) -> int:
    from .session import ClientConfig, ClientError, Session

    host, port = args.tracker
    config = ClientConfig(
        host=host,
        port=port,
        transport=args.transport,
        timeout=args.timeout,
        bind=args.bind,
        max_items=args.max_items,
    )
    progress = None if args.quiet else _ProgressReporter(sys.stderr)
    try:
        if config.transport == "udp":
            import asyncio

            from .client import fetch_message

            # asyncio's own loop: with uvloop 0.23 the client's 8 MB message on a pipe
            # came out cut short (at exit status 0) in 5 of 8 runs; asyncio's never was.
            result = asyncio.run(fetch_message(config, progress))
        else:
            # Blocking sockets until the tracker is known to pipeline (then asyncio):
            # against a reference-style tracker, asyncio's import is not worth it.
            result = Session(config, progress).fetch_blocking()
    except ClientError as e:
        if progress is not None:
            progress.finish()
        return _fail("cs457p2p client", str(e))
    if progress is not None:
        progress.finish()
    _report(result, args.verbose)
    return EXIT_OK


async def _demo() -> FetchResult:
    from .client import ClientConfig, fetch_message
    from .database import Database
    from .tracker import Tracker, TrackerConfig

    tracker = Tracker(Database.default(), TrackerConfig(host="127.0.0.1", port=0))
    await tracker.start()
    try:
        sys.stderr.write(
            f"demo: tracker listening on 127.0.0.1:{tracker.port} ({len(tracker.db)} items)\n"
        )
        return await fetch_message(ClientConfig(host="127.0.0.1", port=tracker.port))
    finally:
        await tracker.close()


def run_demo(args: argparse.Namespace) -> int:
    import asyncio

    from .client import ClientError

    try:
        result = asyncio.run(_demo())
    except (ClientError, OSError) as e:
        return _fail("cs457p2p demo", str(e))
    _report(result, verbose=True)
    return EXIT_OK


def _print_report(report: Report, as_json: bool) -> int:
    sys.stdout.write((report.json_text() if as_json else report.table()) + "\n")
    sys.stdout.flush()
    return report.exit_code


def run_check(args: argparse.Namespace) -> int:
    import asyncio

    from .checker import ClientCommandError, run_client_checks, run_tracker_checks
    from .scenarios import CLIENT_SCENARIOS

    if args.check_command == "tracker":
        prog = "cs457p2p check tracker"
        host, port = args.address
        if port == 0:
            return _fail(prog, "port 0 is not a tracker's port", EXIT_USAGE)
        report = asyncio.run(
            run_tracker_checks(host, port, transport=args.transport, timeout=args.timeout)
        )
        return _print_report(report, args.json)
    prog = "cs457p2p check client"
    if args.scenario:
        wrong = [
            name
            for name in args.scenario
            if args.transport not in next(s for s in CLIENT_SCENARIOS if s.name == name).transports
        ]
        if wrong:
            return _fail(
                prog, f"scenario {wrong[0]!r} is not run over {args.transport}", EXIT_USAGE
            )
    try:
        report = asyncio.run(
            run_client_checks(
                args.client_command,
                transport=args.transport,
                timeout=args.timeout,
                scenarios=args.scenario,
                seed=args.seed,
            )
        )
    except ClientCommandError as e:
        return _fail(prog, str(e), EXIT_USAGE)
    return _print_report(report, args.json)


def run_bench_command(args: argparse.Namespace) -> int:
    from .bench import run_bench, started_tracker
    from .client import ClientError

    prog = "cs457p2p bench"
    try:
        if args.tracker is not None:
            host, port = args.tracker
            result = run_bench(host, port, args.clients, args.repeat, args.timeout)
        else:
            with started_tracker(args.items) as (port, _n):
                result = run_bench("127.0.0.1", port, args.clients, args.repeat, args.timeout)
    except ClientError as e:
        return _fail(prog, str(e))
    except (OSError, RuntimeError) as e:
        return _fail(prog, str(e))
    sys.stdout.write(result.summary() + "\n")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first "--" is the COMMAND of "check client", whatever it
    # looks like (its own options included), on every Python version.
    after: list[str] | None = None
    if "--" in argv:
        k = argv.index("--")
        argv, after = argv[:k], argv[k + 1 :]
    handlers = {
        "tracker": run_tracker,
        "client": run_client,
        "demo": run_demo,
        "check": run_check,
        "bench": run_bench_command,
    }
    parser = build_parser(argv[0] if argv and argv[0] in handlers else None)
    args = parser.parse_args(argv)
    if after is not None:
        if args.command == "check" and args.check_command == "client":
            args.client_command = [*args.client_command, *after]
        elif after:
            parser.error(f"unrecognized arguments after --: {shlex.join(after)}")
    if args.command == "check" and args.check_command == "client" and not args.client_command:
        return _fail(
            "cs457p2p check client",
            "missing COMMAND: write the client's command line after --",
            EXIT_USAGE,
        )
    with contextlib.suppress(KeyboardInterrupt):
        return handlers[args.command](args)
    return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
