"""Two versions of the package, measured side by side: the before and after of a change.

    python bench/compare.py BEFORE_SRC AFTER_SRC [--rounds 5]

BEFORE_SRC and AFTER_SRC are ``src`` folders of two checkouts (each with its C
extension built in place: ``python setup.py build_ext --inplace``). Every measurement
alternates between them round by round, so that the machine's drift (10 % and more
within minutes on a shared machine) falls on both alike; it prints each side's median
and the median of the paired ratios (after / before) of the same round. Measured (each
process run with the version's ``src`` first on ``PYTHONPATH``):

* one client process fetching N = 100,000 from its own version's tracker (items/s);
* ``cs457p2p bench --clients 10`` (10,000 items a session) against its own tracker;
* the client over UDP, N = 100,000;
* a reference-style client (bench/refstyle.py) against each version's tracker, N = 2,000;
* each version's client against the reference-style tracker, N = 2,000.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

PY = sys.executable
REFSTYLE = str(Path(__file__).resolve().parent / "refstyle.py")
#: The reference-style programs are the baseline, the same for both sides: they run on
#: this checkout's package (for its restricted decoder).
OWN_SRC = str(Path(__file__).resolve().parent.parent / "src")


def env_for(src: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": src, "PYTHONDONTWRITEBYTECODE": "0"}


@contextmanager
def started(cmd: list[str], env: dict[str, str], pattern: str) -> Iterator[int]:
    p = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=env,
    )  # fmt: skip
    try:
        assert p.stdout is not None
        m = re.search(pattern, p.stdout.readline())
        if m is None:
            raise RuntimeError(f"{cmd[:4]} did not start")
        yield int(m.group(1))
    finally:
        p.terminate()
        p.wait(10)


def tracker(src: str, db: str, *extra: str) -> AbstractContextManager[int]:
    return started(
        [PY, "-m", "cs457p2p", "tracker", "--host", "127.0.0.1", "--port", "0", "--db", db,
         *extra],
        env_for(src),
        r"listening on 127\.0\.0\.1:(\d+)",
    )  # fmt: skip


def wall(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=True)
    took = time.perf_counter() - start
    if not out.stdout.strip():
        raise RuntimeError(f"{cmd[:5]} printed nothing: {out.stderr.strip()}")
    return took


def measurements(dbs: dict[int, str]) -> dict[str, tuple[str, Callable[[str], float]]]:
    def client(n: int, *extra: str) -> Callable[[str], float]:
        def run(src: str) -> float:
            with tracker(src, dbs[n]) as port:
                cmd = [PY, "-m", "cs457p2p", "client", "--tracker", f"127.0.0.1:{port}", "-q"]
                return n / wall([*cmd, *extra], env_for(src))

        return run

    def bench(src: str) -> float:
        with tracker(src, dbs[10_000]) as port:
            out = subprocess.run(
                [PY, "-m", "cs457p2p", "bench", "--tracker", f"127.0.0.1:{port}", "--clients",
                 "10", "--repeat", "3"],
                capture_output=True, text=True, env=env_for(src), timeout=600, check=True,
            )  # fmt: skip
        return float(re.search(r"([\d,]+) items/s", out.stdout)[1].replace(",", ""))  # type: ignore[index]

    def ref_client(src: str) -> float:
        with tracker(src, dbs[2000]) as port:
            return 2000 / wall([PY, REFSTYLE, "client", "--port", str(port)], env_for(OWN_SRC))

    def ref_tracker(src: str) -> float:
        with started(
            [PY, REFSTYLE, "tracker", "--port", "0", "--items", "2000"],
            env_for(OWN_SRC),
            r"listening on \D*(\d+)",
        ) as port:
            cmd = [PY, "-m", "cs457p2p", "client", "--tracker", f"127.0.0.1:{port}", "-q"]
            return 2000 / wall(cmd, env_for(src))

    return {
        "client process, N=100,000": ("items/s", client(100_000)),
        "bench --clients 10, 10,000 items": ("items/s", bench),
        "client over UDP, N=100,000": ("items/s", client(100_000, "--transport", "udp")),
        "reference-style client -> this tracker, N=2,000": ("items/s", ref_client),
        "this client -> reference-style tracker, N=2,000": ("items/s", ref_tracker),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="", help="the measurements whose name holds this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dbs = {}
        for n in (2000, 10_000, 100_000):
            dbs[n] = str(Path(tmp) / f"w{n}.txt")
            Path(dbs[n]).write_text(" ".join(f"w{i}" for i in range(n)))
        print(f"{'measurement':<50} {'before':>12} {'after':>12} {'after/before':>14}")
        for name, (unit, run) in measurements(dbs).items():
            if args.only not in name:
                continue
            before: list[float] = []
            after: list[float] = []
            for k in range(args.rounds):  # alternate which goes first
                order = [(args.before, before), (args.after, after)]
                for src, into in order if k % 2 == 0 else order[::-1]:
                    into.append(run(src))
            ratios = [a / b for a, b in zip(after, before, strict=True)]
            sys.stdout.flush()
            print(
                f"{name:<50} {statistics.median(before):>12,.0f} {statistics.median(after):>12,.0f}"
                f" {statistics.median(ratios):>8.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
                f"  {unit}, {args.rounds} rounds"
            )


if __name__ == "__main__":
    main()
