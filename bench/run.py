"""The benchmark suite: every figure of docs/BENCHMARKS.md, measured side by side.

    python bench/run.py            # everything (a few minutes on 2 cores)
    python bench/run.py --quick    # smaller sizes, 3 runs, to try it out

It prints a table, rewrites the generated part of docs/BENCHMARKS.md (between the
``bench:start``/``bench:end`` markers; the rest of the file is kept) and draws
docs/benchmarks.png (needs matplotlib: ``pip install -e '.[bench]'``). Every figure is the
median and min-max of at least 3 runs; every run checks the message it got.

Baselines, measured in the same run: the reference-style tracker and client of
bench/refstyle.py (one connection per request, as the course's reference), and
``redis-benchmark -t get -P 16 -c 50`` against ``redis-server`` when both are installed
(Debian packages redis-server and redis-tools); the table says when they are skipped.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CLI = [PY, "-m", "cs457p2p"]
REFSTYLE = [PY, str(ROOT / "bench" / "refstyle.py")]
DOC = ROOT / "docs" / "BENCHMARKS.md"
PLOT = ROOT / "docs" / "benchmarks.png"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
#: rounds of the reference-style paths at least (each takes about a second)
REF_PATH_RUNS = 15


# ------------------------------------------------------------------------ measuring


@dataclass
class Figure:
    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def cell(self) -> str:
        if not self.values:
            return f"skipped ({self.note})" if self.note else "skipped"
        fmt = _fmt(self.unit)
        lo, hi = min(self.values), max(self.values)
        extra = f", {self.note}" if self.note else ""
        return f"{fmt(self.median)} ({fmt(lo)} - {fmt(hi)}) {self.unit}{extra}"


def _fmt(unit: str) -> Callable[[float], str]:
    if unit in ("items/s", "req/s"):
        return lambda v: f"{v:,.0f}"
    if unit == "MB":
        return lambda v: f"{v:.0f}"
    if unit == "x":
        return lambda v: f"{v:.2f}"
    return lambda v: f"{v:.3f}"


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


@contextmanager
def db_file(n: int) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"words{n}.txt")
        Path(path).write_text(words(n))
        yield path


@dataclass
class Proc:
    popen: subprocess.Popen[str]
    port: int
    ready: float  # seconds from spawn to its ready line


def _rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def server(cmd: Sequence[str], pattern: str) -> Iterator[Proc]:
    """Start a server process, wait for its ready line on stderr/stdout, stop it after."""
    start = time.perf_counter()
    p = subprocess.Popen(
        list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        ready = time.perf_counter() - start
        m = re.search(pattern, line)
        if m is None:
            raise RuntimeError(f"{cmd[:4]} did not start: {line!r}")
        yield Proc(p, int(m.group(1)), ready)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def our_tracker(db: str, *extra: str) -> AbstractContextManager[Proc]:
    return server(
        [*CLI, "tracker", "--host", "127.0.0.1", "--port", "0", "--db", db, *extra],
        r"listening on 127\.0\.0\.1:(\d+)",
    )


def ref_tracker(n: int) -> AbstractContextManager[Proc]:
    return server([*REFSTYLE, "tracker", "--items", str(n)], r"listening on (\d+)")


def timed(cmd: Sequence[str], expect: str, timeout: float = 600) -> float:
    """Run a client process; return its wall seconds; check its message."""
    start = time.perf_counter()
    p = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=timeout)
    wall = time.perf_counter() - start
    if p.returncode != 0 or out.decode().rstrip("\n") != expect:
        raise RuntimeError(f"{cmd[:5]} failed ({p.returncode}): {err.decode()[-300:]}")
    return wall


def peak_rss(cmd: Sequence[str], expect: str, timeout: float = 600) -> tuple[float, float]:
    """Like :func:`timed`, with the child's own peak RSS from wait4."""
    start = time.perf_counter()
    p = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert p.stdout is not None
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0 or out.decode().rstrip("\n") != expect:
        raise RuntimeError(f"{cmd[:5]} failed ({p.returncode}): {len(out)} bytes {out[:60]!r}")
    return wall, usage.ru_maxrss / 1024


# --------------------------------------------------------------------------- suites


@dataclass
class Results:
    figures: list[Figure] = field(default_factory=list)
    by_n: dict[str, dict[int, Figure]] = field(default_factory=dict)
    by_clients: dict[str, dict[int, Figure]] = field(default_factory=dict)

    def add(self, fig: Figure) -> Figure:
        self.figures.append(fig)
        print(f"  {fig.name}: {fig.cell()}", flush=True)
        return fig


def client_cmd(port: int, *extra: str) -> list[str]:
    return [*CLI, "client", "--tracker", f"127.0.0.1:{port}", "--quiet", *extra]


def suite_sizes(res: Results, sizes: list[int], ref_sizes: list[int], runs: int) -> None:
    print("items/s against N (one client process, whole wall time)")
    res.by_n["ours"], res.by_n["reference-style"] = {}, {}
    for n in sizes:
        fig = Figure(f"ours, client process, N={n:,}", "items/s")
        with db_file(n) as db, our_tracker(db) as t:
            for _ in range(runs):
                wall = timed(client_cmd(t.port), words(n))
                fig.values.append(n / wall)
        res.by_n["ours"][n] = res.add(fig)
    for n in ref_sizes:
        fig = Figure(f"reference-style client + tracker, N={n:,}", "items/s")
        with ref_tracker(n) as t:
            for _ in range(runs):
                wall = timed([*REFSTYLE, "client", "--port", str(t.port)], words(n))
                fig.values.append(n / wall)
        res.by_n["reference-style"][n] = res.add(fig)


def suite_million(res: Results, n: int, runs: int) -> None:
    print(f"the {n:,}-item targets")
    ready = Figure(f"tracker N={n:,}: start to listening line", "s")
    rss = Figure(f"tracker N={n:,}: resident after serving", "MB")
    crss = Figure(f"client N={n:,}: peak resident", "MB")
    rate = Figure(f"client N={n:,}: items/s over the process's wall time", "items/s")
    with db_file(n) as db:
        for _ in range(runs):
            with our_tracker(db) as t:
                ready.values.append(t.ready)
                wall, peak = peak_rss(client_cmd(t.port), words(n))
                rate.values.append(n / wall)
                crss.values.append(peak)
                rss.values.append(_rss_mb(t.popen.pid, "VmHWM"))
    for f in (ready, rss, rate, crss):
        res.add(f)


def suite_reference_paths(res: Results, n: int, runs: int) -> None:
    """The three pairings, interleaved round by round (both trackers up throughout), as
    this machine's speed drifts by 10 % and more from one minute to the next; the ratios
    are taken within each round."""
    runs = max(runs, REF_PATH_RUNS)
    print(f"reference-style paths (N={n:,}, one request per connection, {runs} rounds)")
    ref_client = [*REFSTYLE, "client", "--port"]
    a = Figure(f"reference-style client -> reference-style tracker, N={n:,}", "items/s")
    b = Figure(f"reference-style client -> our tracker, N={n:,}", "items/s")
    c = Figure(f"our client -> reference-style tracker, N={n:,}", "items/s")
    with ref_tracker(n) as ref, db_file(n) as db, our_tracker(db) as ours:
        pairings = [
            (a, [*ref_client, str(ref.port)]),
            (b, [*ref_client, str(ours.port)]),
            (c, client_cmd(ref.port)),
        ]
        for k in range(runs):
            for fig, cmd in pairings[k % 3 :] + pairings[: k % 3]:  # each goes first in turn
                fig.values.append(n / timed(cmd, words(n)))
    for f in (a, b, c):
        f.note = f"{runs} rounds"
        res.add(f)
    for f, what in ((b, "our tracker"), (c, "our client")):
        ratio = Figure(f"{what} / the reference-style pair, same round", "x")
        ratio.values = [x / y for x, y in zip(f.values, a.values, strict=True)]
        res.add(ratio)


def _bench_rate(port: int, clients: int, rounds: int) -> float:
    out = subprocess.run(
        [*CLI, "bench", "--tracker", f"127.0.0.1:{port}", "--clients", str(clients),
         "--repeat", str(rounds)],
        capture_output=True, text=True, check=True, timeout=900,
    ).stdout  # fmt: skip
    m = re.search(r"([\d,]+) items/s", out)
    if m is None:
        raise RuntimeError(f"bench printed {out!r}")
    return float(m.group(1).replace(",", ""))


def _redis_rate(clients: int, keys: int, requests: int) -> float | None:
    server_bin, bench_bin = shutil.which("redis-server"), shutil.which("redis-benchmark")
    if not (server_bin and bench_bin):
        return None
    with _redis(server_bin) as port:
        out = subprocess.run(
            [bench_bin, "-p", str(port), "-t", "get", "-P", "16", "-c", str(clients),
             "-r", str(keys), "-n", str(requests), "--csv"],
            capture_output=True, text=True, check=True, timeout=600,
        ).stdout  # fmt: skip
    for line in out.splitlines():
        cells = [c.strip('"') for c in line.split(",")]
        if cells and cells[0] == "GET":
            return float(cells[1])
    raise RuntimeError(f"redis-benchmark printed {out!r}")


@contextmanager
def _redis(server_bin: str) -> Iterator[int]:
    import socket

    from cs457p2p.net import free_port

    port = free_port()
    p = subprocess.Popen(
        [server_bin, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        p.terminate()
        p.wait(10)


def suite_clients(res: Results, counts: list[int], items: int, runs: int, ref_items: int) -> None:
    print(f"aggregate items/s against the number of clients ({items:,} items per session)")
    res.by_clients["ours (cs457p2p bench)"], res.by_clients["redis GET -P 16"] = {}, {}
    res.by_clients["reference-style"] = {}
    with db_file(items) as db, our_tracker(db) as t:
        for c in counts:
            fig = Figure(f"ours, cs457p2p bench --clients {c}", "items/s")
            for _ in range(runs):
                fig.values.append(_bench_rate(t.port, c, 1))
            res.by_clients["ours (cs457p2p bench)"][c] = res.add(fig)
    for c in counts:
        fig = Figure(f"redis-benchmark -t get -P 16 -c {c}", "req/s")
        for _ in range(runs):
            rate = _redis_rate(c, items, 2_000_000)
            if rate is None:
                fig.note = "redis-server or redis-benchmark not installed"
                break
            fig.values.append(rate)
        res.by_clients["redis GET -P 16"][c] = res.add(fig)
    for c in counts:
        fig = Figure(f"reference-style, {c} client processes at once, N={ref_items:,}", "items/s")
        with ref_tracker(ref_items) as t:
            for _ in range(runs):
                start = time.perf_counter()
                procs = [
                    subprocess.Popen([*REFSTYLE, "client", "--port", str(t.port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                    for _ in range(c)
                ]  # fmt: skip
                outs = [p.communicate(timeout=900)[0] for p in procs]
                wall = time.perf_counter() - start
                if any(o.decode().rstrip("\n") != words(ref_items) for o in outs):
                    raise RuntimeError("a reference-style client got a wrong message")
                fig.values.append(c * ref_items / wall)
        res.by_clients["reference-style"][c] = res.add(fig)


def suite_udp(res: Results, n: int, runs: int) -> None:
    print(f"UDP (N={n:,})")
    for loss in ("0", "0.05"):
        fig = Figure(f"ours over UDP, --loss {loss}, N={n:,}", "items/s")
        extra = ("--loss", loss, "--fault-seed", "1") if loss != "0" else ()
        with db_file(n) as db, our_tracker(db, *extra) as t:
            for _ in range(runs):
                wall = timed(client_cmd(t.port, "--transport", "udp"), words(n))
                fig.values.append(n / wall)
        res.add(fig)


# -------------------------------------------------------------------------- report


def plot(res: Results) -> str:
    try:  # (imported by name: matplotlib is an optional extra, absent where CI type-checks)
        importlib.import_module("matplotlib").use("Agg")
        plt: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install -e '.[bench]')"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, series in res.by_n.items():
        xs = sorted(series)
        ax1.errorbar(
            xs, [series[x].median for x in xs],
            yerr=[[series[x].median - min(series[x].values) for x in xs],
                  [max(series[x].values) - series[x].median for x in xs]],
            marker="o", capsize=3, label=label,
        )  # fmt: skip
    ax1.set(xscale="log", yscale="log", xlabel="N (items)", ylabel="items/s",
            title="One client process, whole wall time")  # fmt: skip
    ax1.legend()
    for label, series in res.by_clients.items():
        xs = sorted(x for x in series if series[x].values)
        if xs:
            ax2.plot(xs, [series[x].median for x in xs], marker="o", label=label)
    ax2.set(xscale="log", yscale="log", xlabel="concurrent clients",
            ylabel="items/s (redis: GET/s)", title="Aggregate against clients")  # fmt: skip
    ax2.legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    return f"plot written to {PLOT.relative_to(ROOT)}"


def prepare() -> str:
    """Byte-compile the package as ``pip install`` does (an editable checkout run with
    PYTHONDONTWRITEBYTECODE=1 has no .pyc files, so every process would compile its
    modules again: about 70 ms of each client's wall time), and tell which
    implementation of the client's hot loops the processes will use."""
    import compileall

    import cs457p2p
    from cs457p2p.core import speedups

    compileall.compile_dir(Path(cs457p2p.__file__).parent, quiet=1)
    return "C speedups built" if speedups.ACTIVE else "pure Python (no C speedups)"


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return (
        f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()},"
        f" Python {platform.python_version()}, {prepare()}"
    )


def report(res: Results, command: str) -> str:
    lines = [
        START,
        "",
        f"Generated by `{command}` on {datetime.date.today().isoformat()}:"
        f" {machine()}. Median (min - max) of {len(res.figures[0].values)} runs each unless"
        " the row says otherwise.",
        "",
        "| measurement | result |",
        "| --- | --- |",
    ]
    lines += [f"| {f.name} | {f.cell()} |" for f in res.figures]
    lines += ["", f"![benchmarks]({PLOT.name})", "", END]
    return "\n".join(lines)


def write_doc(block: str) -> None:
    DOC.parent.mkdir(exist_ok=True)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\n" + START + "\n" + END + "\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOC.write_text(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller sizes, to try it out")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--no-write", action="store_true", help="print only")
    a = p.parse_args()
    runs = max(3, a.runs)
    print(machine())
    res = Results()
    if a.quick:
        suite_sizes(res, [1_000, 10_000, 100_000], [500, 2_000], runs)
        suite_million(res, 200_000, runs)
        suite_reference_paths(res, 1_000, runs)
        suite_clients(res, [1, 10, 50], 2_000, runs, 200)
        suite_udp(res, 20_000, runs)
    else:
        suite_sizes(res, [1_000, 10_000, 100_000, 1_000_000], [1_000, 5_000], runs)
        suite_million(res, 1_000_000, runs)
        suite_reference_paths(res, 5_000, runs)
        suite_clients(res, [1, 10, 50], 10_000, runs, 500)
        suite_udp(res, 100_000, runs)
    print(plot(res) if not a.no_write else "")
    if not a.no_write:
        command = "python bench/run.py" + (" --quick" if a.quick else "")
        write_doc(report(res, command))
        print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
