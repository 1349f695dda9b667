"""What the tracker's request parser costs per byte, by the shape of what it reads.

    python bench/parsing.py [--size BYTES] [--repeat R]

A hostile client chooses the shape of its requests: the parser must cost time linear in
the bytes received whatever they hold. For each shape, one read of ``--size`` bytes
(64 KiB: what the tracker reads at once, or about one UDP datagram) is parsed by a
``RequestParser`` as the tracker runs it (the run matcher on, for a database of 16 M
items); the figure is the best of ``--repeat`` runs, in ns per byte, and the whole read
in ms of CPU. Shapes: our client's consecutive positions; runs that break after k
positions (the matcher's worst case); random positions; REGISTER repeated; ASCII digits.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from cs457p2p.core.database import Database
from cs457p2p.core.datagram_rules import answer_datagram
from cs457p2p.core.requests import RequestParser
from cs457p2p.core.tracker_responder import TrackerResponder
from cs457p2p.core.wire import REGISTER, encode_position, position_run_bytes

RUN_LIMIT = 1 << 24


def runs_of(length: int, size: int) -> bytes:
    out, start = bytearray(), 0
    while len(out) < size:
        out += position_run_bytes(start, length)
        start += length + 1
    return bytes(out[: size - size % 5])


def shapes(size: int) -> dict[str, Callable[[], bytes]]:
    rng = random.Random(1)
    return {
        "consecutive positions (our client)": lambda: position_run_bytes(0, size // 5),
        "runs breaking after 9 positions": lambda: runs_of(9, size),
        "runs breaking after 2 positions": lambda: runs_of(2, size),
        "runs breaking after 100 positions": lambda: runs_of(100, size),
        "random positions": lambda: b"".join(
            encode_position(rng.randrange(200)) for _ in range(size // 5)
        ),
        "REGISTER repeated": lambda: REGISTER * (size // 8),
        "ASCII digits": lambda: b"12345\n" * (size // 6),
    }


def measure(data: bytes, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        parser = RequestParser(max_request=1 << 20, run_limit=RUN_LIMIT)
        start = time.process_time()
        parser.feed(data)
        parser.flush()
        best = min(best, time.process_time() - start)
    return best


def measure_datagram(data: bytes, responder: TrackerResponder, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        answer_datagram(data, responder)
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64 * 1024)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"one read of {args.size:,} bytes, best of {args.repeat}")
    print(f"{'shape':<38} {'ns/byte':>10} {'ms per read':>12}")
    for name, make in shapes(args.size).items():
        data = make()
        seconds = measure(data, args.repeat)
        print(f"{name:<38} {seconds / len(data) * 1e9:>10,.0f} {seconds * 1000:>12.2f}")
    responder = TrackerResponder(
        Database.from_message(" ".join(f"w{i}" for i in range(100_000)), 1)
    )
    print("one UDP datagram of 65,507 bytes, parsed and answered (100,000 items), best of 5")
    print(f"{'shape':<38} {'ms':>10}")
    for name, make in shapes(65_507).items():
        seconds = measure_datagram(make()[:65_507], responder, args.repeat)
        print(f"{name:<38} {seconds * 1000:>10.2f}")


if __name__ == "__main__":
    main()
