"""``cs457p2p client``: its options, the progress shown on stderr, and the run (blocking
sockets over TCP, asyncio over UDP)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, TextIO

from ..core.addresses import format_address
from .args import (
    EXIT_OK,
    EXIT_USAGE,
    add_examples,
    address_arg,
    fail,
    non_negative_float,
    positive_float,
    positive_int,
    stderr_tracer,
    trace_arg,
)

if TYPE_CHECKING:
    from ..core.fetch import FetchResult

__all__ = ["ProgressReporter", "add_arguments", "report", "run"]

#: --max-message is in mebibytes, ClientConfig.max_message in bytes.
MIB = 1 << 20


EXAMPLES = (
    (
        "collect the message of the tracker on 127.0.0.1:7777",
        "cs457p2p client --tracker 127.0.0.1:7777",
    ),
    (
        "the same over UDP, and say how it was fetched",
        "cs457p2p client --tracker 127.0.0.1:7777 --transport udp --verbose",
    ),
    (
        "print each message sent and received, and what it decodes to",
        "cs457p2p client --tracker 127.0.0.1:7777 --trace",
    ),
)


def add_arguments(c: argparse.ArgumentParser) -> None:
    # (the defaults are ClientConfig's, written there alone; core.fetch is imported only
    # when the client command runs, which needs it anyway)
    from ..core.fetch import ClientConfig

    d = ClientConfig()
    add_examples(c, EXAMPLES)
    c.add_argument(
        "--tracker",
        type=address_arg,
        default=(d.host, d.port),
        metavar="HOST:PORT",
        help=f"tracker address (default: {format_address(d.host, d.port)})",
    )
    c.add_argument(
        "--transport",
        choices=("tcp", "udp"),
        default=d.transport,
        help="fetch over TCP or UDP (default: %(default)s)",
    )
    c.add_argument(
        "--timeout",
        type=positive_float,
        default=d.timeout,
        metavar="SECONDS",
        help="give up when a connection or an answer takes longer (default: %(default)g)",
    )
    c.add_argument("--bind", metavar="ADDR", help="local address to connect from, e.g. 127.0.0.2")
    c.add_argument(
        "--max-items",
        type=positive_int,
        default=d.max_items,
        metavar="N",
        help="refuse a database larger than N items (default: %(default)s)",
    )
    c.add_argument(
        "--max-message",
        type=positive_int,
        default=d.max_message // MIB,
        metavar="MIB",
        help="refuse items whose VALUEs add up to more than MIB mebibytes (default: %(default)s)",
    )
    c.add_argument(
        "--pace",
        type=non_negative_float,
        default=d.pace,
        metavar="SECONDS",
        help="pause this long between two item requests, one request a connection, as the"
        " course's HW08 asks (2-3 s), for demonstrations; TCP only (default: %(default)g,"
        " no pause)",
    )
    trace_arg(c)
    c.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    c.add_argument(
        "--verbose", "-v", action="store_true", help="print connection statistics on stderr"
    )


class ProgressReporter:
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
            # (shown first: a Ctrl-C right after the write must still end the line)
            self.shown = True
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} items")
            self.stream.flush()
        elif now - self.last >= 2.0:
            self.last = now
            self.stream.write(f"fetched {done}/{total} items\n")
            self.stream.flush()

    def finish(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\n")
            self.stream.flush()


def report(result: FetchResult, verbose: bool) -> None:
    """The message on stdout; with ``verbose``, how it was fetched on stderr."""
    if verbose:
        if result.transport == "udp":
            what = f"UDP from {result.connections} sockets"
        else:
            style = "one request per connection" if result.reference_style else "pipelined"
            what = f"{result.connections} connections ({style})"
        sys.stderr.write(f"fetched {result.n} items over {what}\n")
    sys.stdout.write(result.message + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    from ..core.fetch import ClientConfig, ClientError

    host, port = args.tracker
    if args.pace and args.transport == "udp":
        return fail("cs457p2p client", "--pace needs --transport tcp", EXIT_USAGE)
    config = ClientConfig(
        host=host,
        port=port,
        transport=args.transport,
        timeout=args.timeout,
        bind=args.bind,
        max_items=args.max_items,
        max_message=args.max_message * MIB,
        pace=args.pace,
        trace=stderr_tracer() if args.trace else None,
    )
    # (--trace says more than a progress bar, on the same stderr)
    progress = None if args.quiet or args.trace else ProgressReporter(sys.stderr)
    try:
        try:
            if config.transport == "udp":
                import asyncio

                from ..client.udp import UdpClient

                # asyncio's own loop: with uvloop 0.23 the client's 8 MB message on a
                # pipe came out cut short (at exit status 0) in 5 of 8 runs; asyncio's
                # never was.
                result = asyncio.run(UdpClient(config, progress).run())
            else:
                # Blocking sockets until the tracker is known to pipeline (then asyncio):
                # against a reference-style tracker, asyncio's import is not worth it.
                from ..client.blocking import fetch_blocking

                result = fetch_blocking(config, progress)
        finally:  # (an error, the message, or Ctrl-C: the progress line ends first)
            if progress is not None:
                progress.finish()
    except ClientError as e:
        # (the core names a setting by its field; the command line by its option)
        flag = f" (--{e.limit.replace('_', '-')})" if e.limit else ""
        return fail("cs457p2p client", f"{e}{flag}")
    report(result, args.verbose)
    return EXIT_OK
