"""``cs457p2p bench``: many full client sessions in one process, against a tracker.

Each session registers, fetches every item and assembles the message; every message
is checked against the first, so a fast wrong answer cannot pass. Without a tracker
address, a tracker is started in another process (so that the two do not share one
event loop) on a free port of 127.0.0.1, serving ``items`` generated words.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

from .client.pipeline import AsyncClient
from .core.fetch import ClientConfig, ClientError

__all__ = ["BenchResult", "run_bench", "started_tracker"]

_LISTENING = re.compile(r"^listening on \S+:(\d+) \((\d+) items")


@dataclass(frozen=True)
class BenchResult:
    clients: int
    rounds: int
    items: int  # per session
    seconds: list[float]  # wall time of each round
    session_seconds: list[float]  # every session of every round

    @property
    def items_per_second(self) -> float:
        """Aggregate: all items of all sessions over all rounds' wall time."""
        return self.clients * self.rounds * self.items / sum(self.seconds)

    def percentile(self, q: float) -> float:
        data = sorted(self.session_seconds)
        if not data:
            return 0.0
        k = min(len(data) - 1, max(0, round(q * (len(data) - 1))))
        return data[k]

    def summary(self) -> str:
        return (
            f"{self.clients} clients x {self.rounds} rounds x {self.items} items:"
            f" {self.items_per_second:,.0f} items/s;"
            f" session p50 {self.percentile(0.5) * 1000:.1f} ms,"
            f" p99 {self.percentile(0.99) * 1000:.1f} ms;"
            f" round median {statistics.median(self.seconds):.3f} s"
        )


@contextlib.contextmanager
def started_tracker(items: int, *extra: str, timeout: float = 60.0) -> Iterator[tuple[int, int]]:
    """A ``cs457p2p tracker`` process on 127.0.0.1 serving ``items`` generated words;
    yields ``(port, n)`` and stops it afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "words.txt")
        with open(db, "w") as f:
            f.write(" ".join(f"w{i}" for i in range(items)))
        proc = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [sys.executable, "-m", "cs457p2p", "tracker", "--host", "127.0.0.1", "--port", "0",
             "--db", db, *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert proc.stderr is not None
            deadline = time.monotonic() + timeout
            line = proc.stderr.readline()
            m = _LISTENING.match(line)
            if m is None or time.monotonic() > deadline:
                raise RuntimeError(f"tracker did not start: {line.strip()!r}")
            yield int(m[1]), int(m[2])
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()


async def _timed_session(config: ClientConfig) -> tuple[float, str, int]:
    start = time.perf_counter()
    result = await AsyncClient(config).run()
    return time.perf_counter() - start, result.message, result.n


async def _bench(host: str, port: int, clients: int, rounds: int, timeout: float) -> BenchResult:
    config = ClientConfig(host=host, port=port, timeout=timeout)
    reference: str | None = None
    seconds: list[float] = []
    sessions: list[float] = []
    n = 0
    for _ in range(rounds):
        start = time.perf_counter()
        results = await asyncio.gather(*(_timed_session(config) for _ in range(clients)))
        seconds.append(time.perf_counter() - start)
        for took, message, items in results:
            n = items
            if reference is None:
                reference = message
            elif message != reference:
                raise ClientError("two sessions assembled different messages")
            sessions.append(took)
    return BenchResult(clients, rounds, n, seconds, sessions)


def run_bench(
    host: str, port: int, clients: int = 1, rounds: int = 3, timeout: float = 60.0
) -> BenchResult:
    """``clients`` concurrent sessions, ``rounds`` times; raises ClientError."""
    return asyncio.run(_bench(host, port, clients, rounds, timeout))
