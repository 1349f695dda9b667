"""The Part 2 ring at scale, simulated (``cs457p2p simulate``): convergence time and
messages against P = 10 ... 100,000 peers, N = 100 items, with and without churn;
writes docs/ring-scaling.png (needs matplotlib) and prints every run.

    python bench/ring_sim.py [--max-peers P] [--json FILE]

Each P runs in a fresh process (``python -m cs457p2p simulate --json``), so its peak
memory is its own. Churn: 1 % of the peers go down per second, each back 5 s later with
nothing, and the tracker PINGs every 2 s (its default, 20 s, would let the dead stay in
the ring longer than the ring needs to converge).
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent.parent / "docs"
SIZES = (10, 100, 1_000, 10_000, 100_000)
ITEMS = 100


def run(peers: int, churn: bool) -> dict[str, Any]:
    args = ["--peers", str(peers), "--items", str(ITEMS), "--json"]
    if churn:
        args += ["--churn", f"{peers / 100:g}", "--downtime", "5", "--ping-interval", "2"]
    out = subprocess.run(
        [sys.executable, "-m", "cs457p2p", "simulate", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def plot(rows: list[dict[str, Any]], path: Path) -> str:
    try:  # (imported by name: matplotlib is an optional extra)
        importlib.import_module("matplotlib").use("Agg")
        plt: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install -e '.[bench]')"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for churn, label in ((0.0, "no churn"), (1.0, "churn: 1 % of peers down per second")):
        pts = sorted(
            (r["peers"], r) for r in rows if (r["churn"] > 0) == bool(churn) and r["converged_s"]
        )
        if not pts:
            continue
        xs = [p for p, _ in pts]
        ax1.plot(xs, [r["converged_s"] for _, r in pts], marker="o", label=label)
        ax2.plot(xs, [r["messages_total"] / r["peers"] for _, r in pts], marker="o", label=label)
    ax1.set(
        xscale="log",
        xlabel="P (peers)",
        ylabel="seconds (virtual)",
        title=f"Every peer holds the message (N = {ITEMS}, 10 ms links)",
    )
    ax2.set(xscale="log", xlabel="P (peers)", ylabel="messages per peer", title="Messages")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return f"wrote {path}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--max-peers", type=int, default=SIZES[-1])
    ap.add_argument("--json", type=Path, help="also write every run here")
    a = ap.parse_args()
    rows = []
    print("peers  churn/s  converged (virtual s)  messages/peer  lost  rejoined  real s  peak MB")
    for churn in (False, True):
        for peers in (p for p in SIZES if p <= a.max_peers):
            r = run(peers, churn)
            rows.append(r)
            conv = f"{r['converged_s']:.3f}" if r["converged_s"] is not None else "never"
            print(
                f"{peers:>7,}  {r['churn']:>7g}  {conv:>21}  {r['messages_total'] / peers:>13,.0f}"
                f"  {r['lost']:>4,}  {r['rejoined']:>8,}  {r['real_seconds']:>6.1f}"
                f"  {r['peak_rss_mb']:>7.0f}",
                flush=True,
            )
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(plot(rows, DOCS / "ring-scaling.png"))


if __name__ == "__main__":
    main()
