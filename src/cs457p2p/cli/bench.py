"""``cs457p2p bench``: concurrent full client sessions, timed (see
:mod:`cs457p2p.bench`)."""

from __future__ import annotations

import argparse
import sys

from .args import EXIT_OK, add_examples, address_arg, fail, positive_float, positive_int

__all__ = ["add_arguments", "run"]


EXAMPLES = (
    (
        "10 sessions at once against a tracker started here, 100,000 items",
        "cs457p2p bench --clients 10",
    ),
    (
        "against a tracker already running, one round",
        "cs457p2p bench --tracker 127.0.0.1:7777 --clients 4 --repeat 1",
    ),
)


def add_arguments(b: argparse.ArgumentParser) -> None:
    add_examples(b, EXAMPLES)
    b.add_argument("--tracker", type=address_arg, metavar="HOST:PORT", help="an existing tracker")
    b.add_argument(
        "--clients",
        type=positive_int,
        default=1,
        metavar="C",
        help="concurrent sessions (default: 1)",
    )
    b.add_argument(
        "--repeat", type=positive_int, default=3, metavar="R", help="rounds (default: 3)"
    )
    b.add_argument(
        "--items",
        type=positive_int,
        default=100_000,
        metavar="N",
        help="items of the started tracker (default: 100000)",
    )
    b.add_argument(
        "--timeout",
        type=positive_float,
        default=60.0,
        metavar="SECONDS",
        help="per network step (default: 60)",
    )


def run(args: argparse.Namespace) -> int:
    from ..bench import run_bench, started_tracker
    from ..core.fetch import ClientError

    prog = "cs457p2p bench"
    try:
        if args.tracker is not None:
            host, port = args.tracker
            result = run_bench(host, port, args.clients, args.repeat, args.timeout)
        else:
            with started_tracker(args.items) as (port, _n):
                result = run_bench("127.0.0.1", port, args.clients, args.repeat, args.timeout)
    except (ClientError, OSError, RuntimeError) as e:
        return fail(prog, str(e))
    sys.stdout.write(result.summary() + "\n")
    return EXIT_OK
