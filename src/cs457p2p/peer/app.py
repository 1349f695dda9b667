"""A peer's process, as one call: :func:`run_peer` takes a :class:`RunConfig` (the peer's
settings, and how long it serves and how much it says) and runs the peer: progress on
stderr, the message on stdout, then serving the others until SIGINT or SIGTERM (or
``linger`` seconds). The ``peer`` command parses its options into a :class:`RunConfig`
and calls it."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

from .config import PeerConfig
from .node import Peer, PeerError

__all__ = ["RunConfig", "run_peer"]


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything the ``peer`` command runs; each default written here (or in
    :class:`PeerConfig`) and nowhere else."""

    peer: PeerConfig
    #: seconds it serves after printing the message (None: until SIGINT or SIGTERM)
    linger: float | None = None
    #: no progress on stderr
    quiet: bool = False
    #: also say where each item came from (and each failed exchange)
    verbose: bool = False


def run_peer(config: RunConfig) -> None:
    """Run the peer as ``config`` says, until it is stopped. Raises :class:`PeerError`
    (its one line) when it cannot take part or its fetching fails."""
    asyncio.run(_main(config))


def _say(config: RunConfig) -> Callable[[str, str], None]:
    handle = config.peer.handle

    def on_event(kind: str, text: str) -> None:
        if kind == "done":
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
            return
        if config.quiet or (kind == "items" and not config.verbose):
            return
        if kind == "error" and not config.verbose:
            return  # (a neighbour that is gone: retried, and said by -v)
        sys.stderr.write(f"{handle}: {text}\n")
        sys.stderr.flush()

    return on_event


async def _main(config: RunConfig) -> None:
    handle = config.peer.handle
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    peer = Peer(config.peer, _say(config))
    loop.set_exception_handler(peer.handle_loop_error)  # (counted, never printed)
    await peer.start()
    started = loop.time()
    fetch = loop.create_task(peer.run())
    stopping = loop.create_task(stop.wait())
    try:
        await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if fetch.done() and not fetch.cancelled() and fetch.exception() is not None:
            error = fetch.exception()
            raise error if isinstance(error, PeerError) else PeerError(repr(error))
        if fetch.done() and not config.quiet:
            c = peer.state.counters
            hosted = ", 1 hosted" if peer.state.hosted else ""
            until = f"for {config.linger:g} s more" if config.linger else "until stopped"
            sys.stderr.write(
                f"{handle}: {peer.state.held} items in"
                f" {loop.time() - started:.2f} s ({c.from_neighbour} from neighbours,"
                f" {c.from_tracker} from the tracker{hosted}; {c.queries_sent:,} QUERYs"
                f" sent); serving {until}\n"
            )
            sys.stderr.flush()
        if fetch.done() and config.linger is not None:
            await asyncio.wait({stopping}, timeout=config.linger)
        else:
            await stopping
    finally:
        fetch.cancel()
        stopping.cancel()
        await peer.close()
        if not config.quiet and (peer.refused or peer.evicted or peer.errors):
            sys.stderr.write(f"{handle}: {_turned_away(peer)}\n")


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
