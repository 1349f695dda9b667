"""What the sandbox costs a grading: a class of correct submissions (the student-style
good client, one folder each) graded with ``cs457p2p grade client`` twice per round, in
the sandbox and with ``--no-sandbox``, their order alternating.

    python bench/sandbox.py [--students 30] [--rounds 3] [--jobs 2] [--scenario NAME ...]

Target (issue 20): the sandboxed grading within 1.5x of the unsandboxed one (the median
of the per-round ratios). Prints each run's wall time and the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
GOOD = HERE.parent / "tests" / "students" / "clients" / "good_client.py"
SRC = HERE.parent / "src"


def _grade(subs: Path, sandboxed: bool, jobs: int, scenarios: list[str]) -> float:
    out = subs.parent / ("report-sandbox" if sandboxed else "report-plain")
    cmd = [
        sys.executable, "-m", "cs457p2p", "grade", "client", str(subs),
        "--command", f"{sys.executable} client.py {{host}} {{port}}",
        "--jobs", str(jobs), "--report-dir", str(out), "--share", str(SRC),
        "--require-sandbox" if sandboxed else "--no-sandbox",
        *(x for s in scenarios for x in ("--scenario", s)),
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
    seconds = time.perf_counter() - start
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    if done.returncode != 0 or " passed;" not in last or "failed" in last:
        raise SystemExit(f"grading failed ({'sandbox' if sandboxed else 'plain'}): {last}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--students", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--scenario", action="append", default=[], help="only these (default: all)")
    a = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cs457p2p-bench-sandbox-"))
    try:
        subs = root / "class"
        for k in range(a.students):
            (subs / f"student{k:02d}").mkdir(parents=True)
            shutil.copy(GOOD, subs / f"student{k:02d}" / "client.py")
        print(
            f"{a.students} correct submissions, --jobs {a.jobs},"
            f" scenarios: {', '.join(a.scenario) or 'all'}; {os.cpu_count()} cores"
        )
        ratios = []
        for r in range(a.rounds):
            order = [True, False] if r % 2 == 0 else [False, True]
            times = {s: _grade(subs, s, a.jobs, a.scenario) for s in order}
            ratios.append(times[True] / times[False])
            print(
                f"round {r + 1}: sandbox {times[True]:.1f} s, no sandbox {times[False]:.1f} s,"
                f" ratio {ratios[-1]:.2f}"
            )
        print(
            f"sandbox / no sandbox: median {statistics.median(ratios):.2f}"
            f" ({min(ratios):.2f} - {max(ratios):.2f}) over {a.rounds} rounds; target <= 1.5"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
