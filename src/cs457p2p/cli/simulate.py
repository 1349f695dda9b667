"""``cs457p2p simulate``: a Part 2 ring simulated (:mod:`cs457p2p.simulator`)."""

from __future__ import annotations

import argparse
import json
import sys

from .args import EXIT_OK, EXIT_USAGE, add_examples, fail, number, positive_float, positive_int

__all__ = ["add_arguments", "run"]


def _latency_arg(text: str) -> tuple[float, float]:
    """``MS`` or ``MS:JITTER`` (milliseconds) -> seconds."""
    base, _, jitter = text.partition(":")
    try:
        ms, jit = float(base), float(jitter) if jitter else 0.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"not MS or MS:JITTER: {text!r}") from None
    if not (0 <= ms < 1e6 and 0 <= jit <= ms):
        raise argparse.ArgumentTypeError("MS must be >= 0, and JITTER between 0 and MS")
    return ms / 1000, jit / 1000


def _probability(text: str) -> float:
    """A chance of loss below 1 (at 1 a message would be sent again for ever)."""
    p = number(text)
    if not 0 <= p < 1:
        raise argparse.ArgumentTypeError("must be at least 0 and below 1")
    return p


def _rate(text: str) -> float:
    r = number(text)
    if not 0 <= r < 1e9:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return r


EXAMPLES = (
    (
        "1,000 peers, 100 items, 5 peers going down a second",
        "cs457p2p simulate --peers 1000 --items 100 --churn 5",
    ),
    (
        "100 peers on a slow network that loses 10% of the messages, as JSON",
        "cs457p2p simulate --peers 100 --items 16 --latency 50:20 --loss 0.1 --json",
    ),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    # (the defaults are SimConfig's, written there alone)
    from ..simulator import SimConfig

    d = SimConfig(peers=1, items=1)
    add_examples(p, EXAMPLES)
    p.add_argument(
        "--peers",
        type=positive_int,
        required=True,
        metavar="P",
        help="peers in the ring, at most 1,000,000 (each joins at once, as in a real start)",
    )
    p.add_argument(
        "--items",
        type=positive_int,
        required=True,
        metavar="N",
        help="items of the tracker's database (N words), at most 1,000,000",
    )
    p.add_argument(
        "--latency",
        type=_latency_arg,
        default=(d.latency, d.jitter),
        metavar="MS[:JITTER]",
        help="one-way delay of every message, give or take JITTER (default:"
        f" {d.latency * 1000:g}{f':{d.jitter * 1000:g}' if d.jitter else ''})",
    )
    p.add_argument(
        "--loss",
        type=_probability,
        default=d.loss,
        metavar="P",
        help="chance a message is lost and sent again, as TCP does (default: %(default)g)",
    )
    p.add_argument(
        "--churn",
        type=_rate,
        default=d.churn,
        metavar="RATE",
        help="peers going down per second, each back --downtime s later with nothing"
        " (default: %(default)g)",
    )
    p.add_argument(
        "--downtime",
        type=positive_float,
        default=d.downtime,
        metavar="SECONDS",
        help="how long a peer that went down stays down (default: %(default)g)",
    )
    p.add_argument(
        "--ping-interval",
        type=positive_float,
        default=d.ping_interval,
        metavar="SECONDS",
        help="the tracker's PINGs (default: %(default)g)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=d.seed,
        metavar="S",
        help="seeds every random choice (latency, loss, churn): the same seed, the same run"
        " (default: %(default)s)",
    )
    p.add_argument(
        "--limit",
        type=positive_float,
        default=d.limit,
        metavar="SECONDS",
        help="virtual seconds at most (default: %(default)g)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from ..simulator import SimConfig, simulate

    if args.peers > 1_000_000:
        return fail("cs457p2p simulate", "--peers: at most 1,000,000", EXIT_USAGE)
    if args.items > 1_000_000:
        return fail("cs457p2p simulate", "--items: at most 1,000,000", EXIT_USAGE)
    latency, jitter = args.latency
    config = SimConfig(
        peers=args.peers,
        items=args.items,
        latency=latency,
        jitter=jitter,
        loss=args.loss,
        churn=args.churn,
        downtime=args.downtime,
        seed=args.seed,
        ping_interval=args.ping_interval,
        limit=args.limit,
    )
    result = simulate(config)
    out = result.to_json()
    if args.json:
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return EXIT_OK
    lat = f"{latency * 1000:g} ms" + (f" +/- {jitter * 1000:g}" if jitter else "")
    lines = [
        f"simulated {args.peers:,} peers, {args.items:,} items: latency {lat}, loss"
        f" {args.loss:g}, churn {args.churn:g}/s, seed {args.seed}",
    ]
    if result.converged is None:
        lines.append(f"not every peer held the message within {args.limit:g} virtual seconds")
    else:
        lines.append(
            f"every peer up held the message after {result.converged:.3f} s (virtual);"
            f" the first after {result.first_done or 0:.3f} s, half after"
            f" {result.median_done or 0:.3f} s"
        )
    msgs = "; ".join(f"{k} {v:,}" for k, v in result.messages.items() if v)
    lines.append(f"messages: {sum(result.messages.values()):,} ({msgs})")
    lines.append(
        f"peers lost {result.lost:,}, rejoined {result.rejoined:,}, pruned by the tracker"
        f" {result.pruned:,}, down at the end {result.down_at_end:,}"
    )
    if not result.messages_right:
        lines.append("a peer assembled a wrong message (a bug: please report it)")
    lines.append(
        f"real time {result.real_seconds:.1f} s, peak memory {result.peak_rss_mb:.0f} MB"
        f" resident, {result.events:,} events"
    )
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK if result.messages_right else 1
