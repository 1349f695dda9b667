"""``cs457p2p tracker``: its options, built from the defaults of
:class:`~cs457p2p.tracker.app.ServeConfig` (and the dataclasses it holds), read into
one, and :func:`~cs457p2p.tracker.app.serve` (``--course``: :mod:`.course`)."""

from __future__ import annotations

import argparse

from ..core.faults import FaultConfig
from ..monitoring.reporting import LOG_FORMATS, LOG_LEVELS
from ..tracker.app import HTTP_PORT, LOOPS, ConfigError, ServeConfig, StartError, serve
from ..tracker.config import TRANSPORTS, TrackerConfig
from .args import (
    EXIT_OK,
    EXIT_USAGE,
    add_examples,
    address_arg,
    fail,
    port_arg,
    positive_float,
    positive_int,
    probability,
    stderr_tracer,
    trace_arg,
)

__all__ = ["DEFAULT", "add_arguments", "config", "run"]

#: Every default the options show: the dataclasses', read, never written here.
DEFAULT = ServeConfig()


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
    """The options, each default read from :data:`DEFAULT` (the dataclasses' own)."""
    tracker, faults_config = DEFAULT.tracker, DEFAULT.tracker.faults
    add_examples(t, EXAMPLES)
    t.add_argument(
        "--host", default=tracker.host, help="address to listen on (default: %(default)s)"
    )
    t.add_argument(
        "--course",
        action="store_true",
        help="serve as the course's own trackers do (tracker-p1.py, p2p-tracker.py): one"
        " connection at a time, Python 2's pickles, the course's databases; never dies",
    )
    t.add_argument(
        "--loop",
        choices=LOOPS,
        default=DEFAULT.loop,
        help="event loop: uvloop if installed (the [fast] extra), else asyncio"
        " (default: %(default)s)",
    )
    t.add_argument(
        "--port",
        type=port_arg,
        default=tracker.port,
        help="port (default: %(default)s; 0 takes a free port)",
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
        choices=TRANSPORTS,
        default=tracker.transport,
        help="serve over TCP, UDP or both, on the same port (default: %(default)s)",
    )
    t.add_argument(
        "--workers",
        type=positive_int,
        default=DEFAULT.workers,
        metavar="N",
        help="serve from N processes sharing the port (SO_REUSEPORT, Linux), each with its"
        " own limits and faults; not with --http or --log-level info/debug"
        " (default: %(default)s)",
    )
    trace_arg(t)
    limits = t.add_argument_group("limits")
    limits.add_argument(
        "--max-connections",
        type=positive_int,
        default=tracker.max_connections,
        metavar="N",
        help="TCP connections open at once (per worker); when all are taken, the busiest"
        " address gives one up to a newcomer from another (default: %(default)s)",
    )
    limits.add_argument(
        "--max-per-address",
        type=positive_int,
        default=tracker.max_per_address,
        metavar="N",
        help="TCP connections open from one address at once (per worker; default: %(default)s)",
    )
    limits.add_argument(
        "--request-timeout",
        type=positive_float,
        default=tracker.request_timeout,
        metavar="SECONDS",
        help="drop a connection whose request takes longer to arrive (default: %(default)g)",
    )
    ring = t.add_argument_group("Part 2: peers in a ring (on the same TCP port)")
    ring.add_argument(
        "--ping-interval",
        type=positive_float,
        default=tracker.ping_interval,
        metavar="SECONDS",
        help="PING every peer this often, all at once (at most 128 open, 500 started a"
        " second) (default: %(default)g, as the course's)",
    )
    ring.add_argument(
        "--ping-timeout",
        type=positive_float,
        default=tracker.ping_timeout,
        metavar="SECONDS",
        help="a peer that does not answer a PING within this leaves the ring"
        " (default: %(default)g)",
    )
    ring.add_argument(
        "--max-peers",
        type=positive_int,
        default=tracker.max_peers,
        metavar="N",
        help="peers in the ring, at most; more are refused (default: %(default)s)",
    )
    ring.add_argument(
        "--max-peers-per-address",
        type=positive_int,
        default=tracker.max_peers_per_address,
        metavar="N",
        help="peers in the ring from one address, at most; raise it for a class behind"
        " one NAT address (default: %(default)s)",
    )
    faults = t.add_argument_group("fault injection (all off by default)")
    faults.add_argument(
        "--loss",
        type=probability,
        default=faults_config.loss,
        metavar="P",
        help="drop a request or an answer with probability P (UDP)",
    )
    faults.add_argument(
        "--duplicate",
        type=probability,
        default=faults_config.duplicate,
        metavar="P",
        help="send an answer twice (UDP)",
    )
    faults.add_argument(
        "--reorder",
        type=probability,
        default=faults_config.reorder,
        metavar="P",
        help="hold an answer back behind later ones (UDP)",
    )
    faults.add_argument(
        "--delay",
        type=_delay,
        default=(faults_config.delay_ms, faults_config.jitter_ms),
        metavar="MS[:JITTER_MS]",
        help="delay each answer by MS +/- JITTER_MS milliseconds (both)",
    )
    faults.add_argument(
        "--chunk",
        type=positive_int,
        default=faults_config.chunk,
        metavar="BYTES",
        help="write each TCP answer in pieces of at most BYTES, 1 ms apart",
    )
    faults.add_argument(
        "--reset",
        type=probability,
        default=faults_config.reset,
        metavar="P",
        help="abort a TCP connection instead of answering, with probability P",
    )
    faults.add_argument(
        "--fault-seed", type=int, metavar="INT", help="make the faults reproducible"
    )
    t.add_argument(
        "--idle-timeout",
        type=positive_float,
        default=tracker.idle_timeout,
        metavar="SECONDS",
        help="close a connection silent this long (default: %(default)g)",
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
        default=DEFAULT.log_format,
        help="log lines on stderr as text or JSON (default: %(default)s)",
    )
    watch.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=DEFAULT.log_level,
        help="info: a line per registration, finished client and refused request, and a"
        " periodic summary (default: %(default)s, which is quiet in normal runs)",
    )
    watch.add_argument(
        "--summary-interval",
        type=positive_float,
        default=DEFAULT.summary_interval,
        metavar="SECONDS",
        help="seconds between two summary log lines (default: %(default)g)",
    )
    watch.add_argument(
        "--track-clients",
        type=positive_int,
        default=DEFAULT.track_clients,
        metavar="N",
        help="client addresses remembered; beyond N the least recently seen is"
        " forgotten (default: %(default)s)",
    )
    watch.add_argument(
        "--track-memory",
        type=positive_int,
        default=DEFAULT.track_memory >> 20,
        metavar="MIB",
        help="memory the table of clients may use (a fetching client holds one byte per"
        " item); beyond it the least recently seen are forgotten (default: %(default)s)",
    )


def config(args: argparse.Namespace) -> ServeConfig:
    """The options, as the config :func:`serve` takes (ValueError: a fault setting)."""
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
    tracker = TrackerConfig(
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
        trace=stderr_tracer() if args.trace else None,
    )
    return ServeConfig(
        tracker=tracker,
        db=args.db,
        message=args.message,
        shuffle_seed=args.shuffle_seed,
        workers=args.workers,
        loop=args.loop,
        http=args.http,
        log_format=args.log_format,
        log_level=args.log_level,
        summary_interval=args.summary_interval,
        track_clients=args.track_clients,
        track_memory=args.track_memory << 20,
    )


def run(args: argparse.Namespace) -> int:
    prog = "cs457p2p tracker"
    if args.course:
        from .course import run_course

        return run_course(args)
    try:
        settings = config(args)
    except ValueError as e:
        return fail(prog, str(e), EXIT_USAGE)
    try:
        serve(settings)
    except ConfigError as e:
        return fail(prog, str(e), EXIT_USAGE)
    except StartError as e:
        return fail(prog, str(e))
    return EXIT_OK
