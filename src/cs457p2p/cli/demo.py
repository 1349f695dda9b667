"""``cs457p2p demo``: a tracker with the built-in database on a free port of 127.0.0.1,
and the client against it, in one process; with ``--peers P``, P peers in a ring around
it instead (Part 2), each on an address of its own (127.0.0.2, 127.0.0.3...)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..client import fetch_message
from ..core.database import Database
from ..core.fetch import ClientConfig, ClientError, FetchResult
from ..core.ring import PEERS_PER_ADDRESS
from ..net import loopback_hosts
from ..peer import Peer, PeerConfig, PeerError
from ..tracker.server import Tracker, TrackerConfig
from ..waits import wait_for
from .args import EXIT_FAILURE, EXIT_OK, add_examples, fail, positive_int
from .client import report

__all__ = ["add_arguments", "run"]

#: Seconds the peers of ``--peers`` may take to all hold the message.
RING_TIMEOUT = 60.0
MAX_DEMO_PEERS = 1000


EXAMPLES = (
    ("a tracker and a client, in one process", "cs457p2p demo"),
    ("Part 2: a tracker and 8 peers in a ring", "cs457p2p demo --peers 8"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_examples(parser, EXAMPLES)
    parser.add_argument(
        "--peers",
        type=positive_int,
        metavar="P",
        help=f"Part 2: P peers in a ring around the tracker (at most {MAX_DEMO_PEERS})",
    )


async def _demo() -> FetchResult:
    tracker = Tracker(Database.default(), TrackerConfig(host="127.0.0.1", port=0))
    await tracker.start()
    try:
        sys.stderr.write(
            f"demo: tracker listening on 127.0.0.1:{tracker.port} ({len(tracker.db)} items)\n"
        )
        return await fetch_message(ClientConfig(host="127.0.0.1", port=tracker.port))
    finally:
        await tracker.close()


def _loopback(k: int) -> str:
    """The k-th peer's address: 127.0.0.2, 127.0.0.3... (all of 127/8 is loopback on
    Linux; where only 127.0.0.1 is, every peer listens there)."""
    return loopback_hosts([f"127.0.{(k + 2) // 256}.{(k + 2) % 256}"])[0]


def _peers(count: int) -> str:
    return "1 peer" if count == 1 else f"{count:,} peers"


async def _ring_demo(count: int) -> tuple[str, str]:
    """The message, and a summary line."""
    loop = asyncio.get_running_loop()
    # (where only 127.0.0.1 is loopback, every peer registers from it)
    shared = TrackerConfig(
        host="127.0.0.1", port=0, max_peers_per_address=max(count, PEERS_PER_ADDRESS)
    )
    tracker = Tracker(Database.default(), shared)
    await tracker.start()
    nodes: list[Peer] = []
    try:
        sys.stderr.write(
            f"demo: tracker listening on 127.0.0.1:{tracker.port} ({len(tracker.db)} items);"
            f" {_peers(count)} joining\n"
        )
        for k in range(count):
            config = PeerConfig(
                tracker=("127.0.0.1", tracker.port),
                handle=f"peer{k + 1}",
                listen_host=_loopback(k),
            )
            node = Peer(config)
            await node.start()
            nodes.append(node)
        joined = loop.time()
        await wait_for(asyncio.gather(*(n.run() for n in nodes)), RING_TIMEOUT)
        took = loop.time() - joined
        messages = {n.state.message() for n in nodes}
        if len(messages) != 1:
            raise PeerError("the peers assembled different messages")
        from_ring = sum(n.state.counters.from_neighbour for n in nodes)
        from_tracker = sum(n.state.counters.from_tracker for n in nodes)
        ring = tracker.ring
        assert ring is not None
        holds = {1: "the peer holds", 2: "both peers hold"}.get(count, f"all {count:,} peers hold")
        summary = (
            f"demo: {holds} the message {took:.3f} s after the last REGISTER;"
            f" items from neighbours {from_ring}, from the tracker {from_tracker};"
            f" UPDATE_NBR sent {ring.counters.neighbour_updates}"
        )
        if ring.unhosted:
            summary += (
                f"\ndemo: {ring.unhosted} of the {ring.n} items are hosted by no peer: a peer"
                f" that gets no new item for {nodes[0].config.patience:g} s (--patience) asks"
                " the tracker for what it lacks, and they travel round the ring from there"
            )
        return messages.pop(), summary
    finally:
        for node in nodes:
            await node.close()
        await tracker.close()


def run(args: argparse.Namespace) -> int:
    if args.peers:
        if args.peers > MAX_DEMO_PEERS:
            return fail("cs457p2p demo", f"--peers: at most {MAX_DEMO_PEERS}", 2)
        try:
            message, summary = asyncio.run(_ring_demo(args.peers))
        except (PeerError, OSError) as e:
            return fail("cs457p2p demo", str(e))
        except asyncio.TimeoutError:
            return fail(
                "cs457p2p demo",
                f"the ring did not complete within {RING_TIMEOUT:g} s",
                EXIT_FAILURE,
            )
        sys.stdout.write(message + "\n")
        sys.stderr.write(summary + "\n")
        return EXIT_OK
    try:
        result = asyncio.run(_demo())
    except (ClientError, OSError) as e:
        return fail("cs457p2p demo", str(e))
    report(result, verbose=True)
    return EXIT_OK
