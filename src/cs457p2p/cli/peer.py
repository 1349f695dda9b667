"""``cs457p2p peer``: a Part 2 peer on the command line: its options, its progress on
stderr, the message on stdout, and its end (a signal, or ``--linger``)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .args import (
    EXIT_FAILURE,
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
    from ..peer import Peer

__all__ = ["add_arguments", "run"]


def _listen_arg(text: str) -> tuple[str, int]:
    """``HOST`` or ``HOST:PORT`` (port 0, or none: a free one)."""
    host, port = address_arg(text, default_port=0)
    return host, port


EXAMPLES = (
    (
        "join the ring of the tracker on 127.0.0.1:7777 as alice",
        "cs457p2p peer --tracker 127.0.0.1:7777 --handle alice",
    ),
    (
        "listen on 127.0.0.1; stop serving the others 10 s after the message",
        "cs457p2p peer --tracker 127.0.0.1:7777 --handle bob --listen 127.0.0.1 --linger 10",
    ),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_examples(p, EXAMPLES)
    p.add_argument(
        "--tracker",
        type=address_arg,
        default=("localhost", 7777),
        metavar="HOST:PORT",
        help="the tracker (default: localhost:7777)",
    )
    p.add_argument("--handle", required=True, metavar="NAME", help="this peer's name in the ring")
    p.add_argument(
        "--listen",
        type=_listen_arg,
        metavar="HOST[:PORT]",
        help="where to listen (default: the local address that reaches the tracker, a free"
        " port); connections to others leave from this address too",
    )
    p.add_argument(
        "--linger",
        type=positive_float,
        metavar="SECONDS",
        help="stop serving this long after printing the message (default: serve until"
        " SIGINT or SIGTERM)",
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=5.0,
        metavar="SECONDS",
        help="bound on every connection and on every whole answer, however its bytes"
        " trickle in (default: 5)",
    )
    p.add_argument(
        "--patience",
        type=positive_float,
        default=5.0,  # (core.peer_state.PATIENCE: not imported, start-up stays light)
        metavar="SECONDS",
        help="ask the tracker for what is missing when a period this long brought no new"
        " item, or too few to finish within 8 more (default: 5)",
    )
    p.add_argument(
        "--pace",
        type=non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="pause this long between two item requests, one item each, as the course's"
        " HW09 asks (2-3 s), for demonstrations (default: 0, no pause)",
    )
    p.add_argument(
        "--max-items",
        type=positive_int,
        default=1_000_000,
        metavar="N",
        help="refuse a tracker whose N is larger (default: 1000000)",
    )
    p.add_argument(
        "--max-message",
        type=positive_int,
        default=16,
        metavar="MIB",
        help="hold at most MIB mebi-characters of VALUEs: a neighbour's items beyond it"
        " are ignored, the tracker's end the run (default: 16)",
    )
    trace_arg(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    p.add_argument(
        "--verbose", "-v", action="store_true", help="also say where each item came from"
    )


def run(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from ..core.wire2 import handle_problem
    from ..peer import PeerConfig, PeerError

    prog = "cs457p2p peer"
    problem = handle_problem(args.handle)
    if problem is not None:
        return fail(prog, f"--handle: {problem}", EXIT_USAGE)
    listen_host, listen_port = args.listen if args.listen else (None, 0)
    config = PeerConfig(
        tracker=args.tracker,
        handle=args.handle,
        listen_host=listen_host,
        listen_port=listen_port,
        timeout=args.timeout,
        patience=args.patience,
        pace=args.pace,
        max_message=args.max_message << 20,
        max_items=args.max_items,
        trace=stderr_tracer() if args.trace else None,
    )

    def on_event(kind: str, text: str) -> None:
        if kind == "done":
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
            return
        if args.quiet or (kind == "items" and not args.verbose):
            return
        if kind == "error" and not args.verbose:
            return  # (a neighbour that is gone: retried, and said by -v)
        sys.stderr.write(f"{args.handle}: {text}\n")
        sys.stderr.flush()

    async def main() -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        from ..peer import Peer

        peer = Peer(config, on_event)
        loop.set_exception_handler(peer.handle_loop_error)  # (counted, never printed)
        try:
            await peer.start()
        except PeerError as e:
            return fail(prog, str(e), EXIT_FAILURE)
        started = loop.time()
        fetch = loop.create_task(peer.run())
        stopping = loop.create_task(stop.wait())
        try:
            await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if fetch.done() and not fetch.cancelled() and fetch.exception() is not None:
                error = fetch.exception()
                return fail(prog, str(error) if isinstance(error, PeerError) else repr(error))
            if fetch.done() and not args.quiet:
                c = peer.state.counters
                hosted = ", 1 hosted" if peer.state.hosted else ""
                until = f"for {args.linger:g} s more" if args.linger else "until stopped"
                sys.stderr.write(
                    f"{args.handle}: {peer.state.held} items in"
                    f" {loop.time() - started:.2f} s ({c.from_neighbour} from neighbours,"
                    f" {c.from_tracker} from the tracker{hosted}; {c.queries_sent:,} QUERYs"
                    f" sent); serving {until}\n"
                )
                sys.stderr.flush()
            if fetch.done() and args.linger is not None:
                await asyncio.wait({stopping}, timeout=args.linger)
            else:
                await stopping
        finally:
            fetch.cancel()
            stopping.cancel()
            await peer.close()
            if not args.quiet and (peer.refused or peer.evicted or peer.errors):
                sys.stderr.write(f"{args.handle}: {_turned_away(peer)}\n")
        return EXIT_OK

    return asyncio.run(main())


def _turned_away(peer: Peer) -> str:
    """What its port turned away and what went wrong, counted, in one line."""
    cfg = peer.config
    parts = []
    if peer.refused:
        parts.append(
            f"{peer.refused:,} connections turned away (over {cfg.max_per_address} from one"
            f" address or {cfg.max_connections} in all)"
        )
    if peer.evicted:
        parts.append(f"{peer.evicted:,} given up to another address")
    parts += [f"{n:,} {kind}" for kind, n in peer.errors.most_common(5)]
    return "; ".join(parts)
