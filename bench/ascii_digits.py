"""The literal-spec client at full speed: a one-shot client that sends each position as
ASCII digits (``b"17"``, no newline, one connection per request) against a one-shot
client that sends it pickled, both fetching N items from our tracker.

    python bench/ascii_digits.py [--items 5000] [--rounds 5] [--src OTHER/src]

Target: the ASCII client within 1.5x of the pickled one (median of the per-round
ratios; the two run one after the other in each round, their order alternating).
``--src`` runs the tracker from another checkout's sources (to see a version before
the change: a trailing digit run waited 10 ms for more digits, so about 10 ms a request).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent


def _client(port: int, ascii_positions: bool, expect: str) -> float:
    cmd = [sys.executable, str(HERE / "refstyle.py"), "client", "--port", str(port)]
    if ascii_positions:
        cmd.append("--ascii")
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True).stdout
    seconds = time.perf_counter() - start
    if out.strip() != expect:
        raise SystemExit(f"wrong message from {' '.join(cmd[2:])}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--items", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--src", help="run the tracker from these sources (PYTHONPATH)")
    a = p.parse_args()
    words = [f"w{i}" for i in range(a.items)]
    expect = " ".join(words)
    env = dict(os.environ)
    if a.src:
        env["PYTHONPATH"] = a.src
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as db:
        db.write(expect)
        db.flush()
        tracker = subprocess.Popen(
            [sys.executable, "-m", "cs457p2p", "tracker", "--db", db.name,
             "--host", "127.0.0.1", "--port", "0"],
            stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            assert tracker.stderr is not None
            first = tracker.stderr.readline()
            port = int(first.split(":")[-1].split()[0])
            rows = []
            for r in range(a.rounds):
                order = (False, True) if r % 2 == 0 else (True, False)
                took = {k: _client(port, k, expect) for k in order}
                rows.append((took[False], took[True]))
        finally:
            tracker.terminate()
            tracker.wait(10)
    print(f"N = {a.items:,}, tracker from {a.src or 'this checkout'}")
    print("round  pickled (s)  ascii (s)  ascii/pickled")
    for k, (pickled, ascii_s) in enumerate(rows, 1):
        print(f"{k:>5}  {pickled:>11.3f}  {ascii_s:>9.3f}  {ascii_s / pickled:>13.2f}")
    ratios = [t / q for q, t in rows]
    med = statistics.median(ratios)
    pickled_rate = a.items / statistics.median(q for q, _ in rows)
    ascii_rate = a.items / statistics.median(t for _, t in rows)
    print(
        f"median: pickled {pickled_rate:,.0f} items/s, ascii {ascii_rate:,.0f} items/s;"
        f" ratio {med:.2f} ({min(ratios):.2f} - {max(ratios):.2f});"
        f" target <= 1.5: {'met' if med <= 1.5 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
