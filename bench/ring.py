"""Part 2, measured with real processes: a tracker and P ``cs457p2p peer`` processes on
127.0.0.2, 127.0.0.3... (distinct hosts to the tracker).

* ring completion: time from the last peer's REGISTER (its "registered" line) until
  every peer has printed the message, for P peers and N items, and where the items
  came from (neighbours, the tracker: what no peer hosts comes from the tracker);
* peer-to-peer: P peers joining one a second around P items (every item hosted), with
  the peers' defaults: the share of items from neighbours (target: at least 90%);
* UPDATE_NBR per join (the tracker's counters, from ``/api/ring``);
* pruning: K peers SIGKILLed at once; time until the tracker's ring has lost them all;
* the tracker's QUERY answering: 1,000 QUERYs written at once on one connection, time
  until the last answer arrived.

    python bench/ring.py [--quick] [--runs R]

Targets (docs/BENCHMARKS.md): 32 peers x 1,000 items all done within 5 s of the last
REGISTER plus the peers' patience (5 s: 968 items are hosted by no peer); at most 2
UPDATE_NBR per join; 8 peers joining a second apart take at least 90% of their items
from neighbours; 10 dead peers pruned within one PING interval plus one timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO

CLI = [sys.executable, "-m", "cs457p2p"]
EXTRA: list[str] = []


@dataclass
class Proc:
    p: subprocess.Popen[str]
    out: list[tuple[float, str]] = field(default_factory=list)
    err: list[tuple[float, str]] = field(default_factory=list)

    def follow(self) -> None:
        for stream, into in ((self.p.stdout, self.out), (self.p.stderr, self.err)):
            threading.Thread(target=_read, args=(stream, into), daemon=True).start()


def _read(stream: IO[str] | None, into: list[tuple[float, str]]) -> None:
    for line in stream or ():
        into.append((time.monotonic(), line))


@contextmanager
def tracker(items: int, *extra: str) -> Iterator[tuple[int, int]]:
    """A tracker serving ``items`` words with a dashboard: (its port, the dashboard's)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as db:
        db.write(" ".join(f"w{i}" for i in range(items)))
        db.flush()
        p = subprocess.Popen(
            [*CLI, "tracker", "--host", "127.0.0.1", "--port", "0", "--db", db.name,
             "--http", "127.0.0.1:0", *extra],
            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        try:
            assert p.stderr is not None
            port = int(p.stderr.readline().split(":")[1].split()[0])
            http = int(p.stderr.readline().strip().rsplit(":", 1)[1].strip("/"))
            yield port, http
        finally:
            p.terminate()
            p.wait(10)


def ring_status(http: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/api/ring", timeout=10) as r:
        status: dict[str, object] = json.load(r)
    return status


def sources(procs: list[Proc]) -> tuple[int, int]:
    """Items the peers took from neighbours and from the tracker (their last lines)."""
    neighbours = tracker = 0
    for proc in procs:

        def said(proc: Proc = proc) -> bool:
            return any("from neighbours" in line for _, line in proc.err)

        if not wait(said, 10):
            raise SystemExit("a peer did not say where its items came from")
        line = next(line for _, line in proc.err if "from neighbours" in line)
        m = re.search(r"\((\d+) from neighbours, (\d+) from the tracker", line)
        assert m, line
        neighbours += int(m[1])
        tracker += int(m[2])
    return neighbours, tracker


def peers(port: int, count: int, first: int = 0, gap: float = 0.0) -> list[Proc]:
    procs = []
    for k in range(first, first + count):
        host = f"127.0.{(k + 2) // 256}.{(k + 2) % 256}"
        p = subprocess.Popen(
            [*CLI, "peer", "--tracker", f"127.0.0.1:{port}", "--handle", f"p{k}",
             "--listen", host, *EXTRA],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        proc = Proc(p)
        proc.follow()
        procs.append(proc)
        if gap and k < first + count - 1:
            time.sleep(gap)
    return procs


def wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def stop(procs: list[Proc]) -> None:
    for proc in procs:
        if proc.p.poll() is None:
            proc.p.kill()
    for proc in procs:
        proc.p.wait(10)


def completion(count: int, items: int, gap: float = 0.0) -> tuple[float, float, int, int]:
    """Seconds from the last REGISTER until every peer printed; UPDATE_NBR per join;
    items from neighbours and from the tracker. ``gap``: seconds between two joins."""
    with tracker(items) as (port, http):
        procs = peers(port, count, gap=gap)
        try:
            ok = wait(lambda: all(p.out for p in procs), 120)
            if not ok:
                raise SystemExit(f"{count} peers x {items} items: not all done in 120 s")
            registered = [next(t for t, line in p.err if "registered as" in line) for p in procs]
            done = max(p.out[0][0] for p in procs)
            expect = " ".join(f"w{i}" for i in range(items))
            assert all(p.out[0][1].rstrip("\n") == expect for p in procs)
            status = ring_status(http)
            counters = status["counters"]
            assert isinstance(counters, dict)
            per_join = counters["neighbour_updates"] / max(counters["joins"], 1)
            return done - max(registered), per_join, *sources(procs)
        finally:
            stop(procs)


def prune(count: int, dead: int, interval: float, timeout: float) -> float:
    """Seconds from ``dead`` peers' SIGKILL until the ring has lost them all."""
    with tracker(16, "--ping-interval", str(interval), "--ping-timeout", str(timeout)) as (
        port,
        http,
    ):
        procs = peers(port, count)
        try:
            if not wait(lambda: all(p.out for p in procs), 60):
                raise SystemExit("the ring did not complete")
            killed = time.monotonic()
            for proc in procs[:dead]:
                proc.p.send_signal(signal.SIGKILL)
            if not wait(lambda: ring_status(http)["size"] == count - dead, 60):
                raise SystemExit("the dead peers were not pruned within 60 s")
            return time.monotonic() - killed
        finally:
            stop(procs)


def query_batch(items: int = 1000, rounds: int = 20) -> list[float]:
    """Milliseconds for ``items`` QUERYs on one connection, each round."""
    message = b"".join(pickle.dumps(("QUERY", i), protocol=2) for i in range(items))
    times = []
    with tracker(items) as (port, _):
        for _ in range(rounds):
            start = time.perf_counter()
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(message)
                got = bytearray()
                while got.count(b"QUERY_RESULT") < items:
                    data = s.recv(1 << 16)
                    if not data:
                        raise SystemExit("the tracker closed before answering every QUERY")
                    got += data
            times.append((time.perf_counter() - start) * 1000)
    return times


def peer_to_peer(runs: int) -> None:
    """P peers joining 1 s apart around P items: the share of items from neighbours."""
    for count in (5, 8):
        got = [completion(count, count, gap=1.0) for _ in range(runs)]
        shares = [g[2] / max(g[2] + g[3], 1) for g in got]
        print(
            f"peer-to-peer: {count} peers joining 1 s apart around {count} items (every item"
            f" hosted), the peers' defaults: {min(shares):.1%} - {max(shares):.1%} of the"
            f" items from neighbours ({got[-1][2]} / {got[-1][3]} in the last run); all done"
            f" {statistics.median(g[0] for g in got):.3f} s after the last REGISTER",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="P = 8 and 32 only, one run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--p2p", action="store_true", help="the peer-to-peer rows only (joins a second apart)"
    )
    a = ap.parse_args()
    runs = 1 if a.quick else a.runs
    sizes = (8, 32) if a.quick else (8, 32, 128)
    print(f"cs457p2p ring benchmark: {os.cpu_count()} cores, {runs} run(s) each")
    if a.p2p:
        peer_to_peer(runs)
        return
    print(
        "peers  items  done after last REGISTER (s), median (min - max)  UPDATE_NBR/join"
        "  from neighbours / tracker (last run)"
    )
    for count in sizes:
        for items in (16, 1000):
            got = [completion(count, items) for _ in range(runs)]
            secs = [g[0] for g in got]
            print(
                f"{count:>5}  {items:>5}  {statistics.median(secs):>8.3f}"
                f" ({min(secs):.3f} - {max(secs):.3f}){'':>17}{max(g[1] for g in got):.2f}"
                f"{'':>13}{got[-1][2]:,} / {got[-1][3]:,}",
                flush=True,
            )
    peer_to_peer(runs)
    ms = query_batch()
    print(
        f"tracker: 1,000 QUERYs on one connection answered in {statistics.median(ms):.1f} ms"
        f" ({min(ms):.1f} - {max(ms):.1f}), {len(ms)} rounds",
        flush=True,
    )
    interval, timeout = 2.0, 1.0
    times = [prune(30, 10, interval, timeout) for _ in range(runs)]
    print(
        f"prune: 10 of 30 peers SIGKILLed, --ping-interval {interval:g} --ping-timeout"
        f" {timeout:g}: all gone after {statistics.median(times):.2f} s"
        f" ({min(times):.2f} - {max(times):.2f}); bound {interval + timeout:g} s"
    )


if __name__ == "__main__":
    main()
