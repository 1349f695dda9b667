"""``cs457p2p peer``: a Part 2 peer on the command line: its options, built from the
defaults of :class:`~cs457p2p.peer.app.RunConfig` (and the :class:`PeerConfig` it
holds), read into one, and :func:`~cs457p2p.peer.app.run_peer`."""

from __future__ import annotations

import argparse

from ..core.addresses import format_address
from ..core.wire2 import handle_problem
from ..peer.app import RunConfig, run_peer
from ..peer.config import PeerConfig
from ..peer.node import PeerError
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

__all__ = ["DEFAULT", "add_arguments", "config", "run"]

#: Every default the options show: the dataclasses', read, never written here.
DEFAULT = RunConfig(peer=PeerConfig(handle=""))


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
    """The options, each default read from :data:`DEFAULT` (the dataclasses' own)."""
    add_examples(p, EXAMPLES)
    p.add_argument(
        "--tracker",
        type=address_arg,
        default=DEFAULT.peer.tracker,
        metavar="HOST:PORT",
        help=f"the tracker (default: {format_address(*DEFAULT.peer.tracker)})",
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
        default=DEFAULT.peer.timeout,
        metavar="SECONDS",
        help="bound on every connection and on every whole answer, however its bytes"
        " trickle in (default: %(default)g)",
    )
    p.add_argument(
        "--patience",
        type=positive_float,
        default=DEFAULT.peer.patience,
        metavar="SECONDS",
        help="ask the tracker for what is missing when a period this long brought no new"
        " item, or too few to finish within 8 more (default: %(default)g)",
    )
    p.add_argument(
        "--pace",
        type=non_negative_float,
        default=DEFAULT.peer.pace,
        metavar="SECONDS",
        help="pause this long between two item requests, one item each, as the course's"
        " HW09 asks (2-3 s), for demonstrations (default: %(default)g, no pause)",
    )
    p.add_argument(
        "--max-items",
        type=positive_int,
        default=DEFAULT.peer.max_items,
        metavar="N",
        help="refuse a tracker whose N is larger (default: %(default)s)",
    )
    p.add_argument(
        "--max-message",
        type=positive_int,
        default=DEFAULT.peer.max_message >> 20,
        metavar="MIB",
        help="hold at most MIB mebi-characters of VALUEs: a neighbour's items beyond it"
        " are ignored, the tracker's end the run (default: %(default)s)",
    )
    trace_arg(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    p.add_argument(
        "--verbose", "-v", action="store_true", help="also say where each item came from"
    )


def config(args: argparse.Namespace) -> RunConfig:
    """The options, as the config :func:`~cs457p2p.peer.app.run_peer` takes."""
    listen_host, listen_port = args.listen if args.listen else (None, 0)
    peer = PeerConfig(
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
    return RunConfig(peer=peer, linger=args.linger, quiet=args.quiet, verbose=args.verbose)


def run(args: argparse.Namespace) -> int:
    prog = "cs457p2p peer"
    problem = handle_problem(args.handle)
    if problem is not None:
        return fail(prog, f"--handle: {problem}", EXIT_USAGE)
    try:
        run_peer(config(args))
    except PeerError as e:
        return fail(prog, str(e), EXIT_FAILURE)
    return EXIT_OK
