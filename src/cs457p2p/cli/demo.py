"""``cs457p2p demo``: a tracker with the built-in database on a free port of 127.0.0.1,
and the client against it, in one process."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..client import fetch_message
from ..core.database import Database
from ..core.fetch import ClientConfig, ClientError, FetchResult
from ..tracker.server import Tracker, TrackerConfig
from .args import EXIT_OK, fail
from .client import report

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


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


def run(args: argparse.Namespace) -> int:
    try:
        result = asyncio.run(_demo())
    except (ClientError, OSError) as e:
        return fail("cs457p2p demo", str(e))
    report(result, verbose=True)
    return EXIT_OK
