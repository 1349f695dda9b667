"""``cs457p2p simulate``: the ring simulated with the project's own Ring and PeerState on
a virtual clock. Every peer ends with the right message, whatever the ring's size, the
network or churn; a seed gives the same run; and a small ring simulated and the same
ring run as real processes agree (the same message, message counts of the same order)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CliRunner
from cs457p2p.simulator import Clock, Network, SimConfig, simulate
from standins import error_line

CLI = [sys.executable, "-m", "cs457p2p"]


def outcome(config: SimConfig) -> dict[str, Any]:
    out = simulate(config).to_json()
    for key in ("real_seconds", "peak_rss_mb"):
        out.pop(key)
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(1, 60), st.integers(0, 3))
def test_every_peer_assembles_the_message(peers: int, items: int, seed: int) -> None:
    r = simulate(SimConfig(peers=peers, items=items, seed=seed))
    assert r.converged is not None and r.messages_right
    assert len(r.done_times) == peers
    assert r.messages["REGISTER"] == peers == r.messages["REG_INIT"]
    # our tracker tells only the peer whose neighbour changed: one per join after the first
    assert r.messages["UPDATE_NBR"] == peers - 1
    if peers < items:  # some items are hosted by nobody: the tracker was asked
        assert r.messages["QUERY to the tracker"] > 0


def test_a_seed_gives_the_same_run_and_another_seed_another() -> None:
    config = SimConfig(peers=60, items=30, jitter=0.004, loss=0.05, churn=2.0, seed=7)
    assert outcome(config) == outcome(config)
    other = outcome(SimConfig(peers=60, items=30, jitter=0.004, loss=0.05, churn=2.0, seed=8))
    assert other != outcome(config)


def test_under_churn_peers_are_lost_pruned_and_rejoin() -> None:
    config = SimConfig(
        peers=200, items=50, churn=20.0, downtime=1.0, ping_interval=1.0, ping_timeout=0.5
    )
    r = simulate(config)
    assert r.converged is not None and r.messages_right
    assert r.lost > 0 and r.rejoined > 0 and r.pruned > 0
    assert r.messages["PING"] > 0 and r.messages["refused connection"] > 0


def test_loss_and_jitter_delay_but_do_not_break_the_ring() -> None:
    calm = simulate(SimConfig(peers=100, items=40, seed=3))
    rough = simulate(SimConfig(peers=100, items=40, jitter=0.005, loss=0.2, seed=3))
    assert calm.messages_right and rough.messages_right
    assert calm.converged is not None and rough.converged is not None
    assert rough.converged > calm.converged  # (a loss costs an RTO of 200 ms)


def test_the_clock_keeps_time_order_across_its_fifo_and_heap() -> None:
    clock = Clock(fixed=0.5)
    clock.after(0.5, 1, ("a",))
    clock.at(0.2, 2, "b")
    clock.after(0.1, 3, ("c",))  # not the fixed delay: the heap
    clock.at(0.5, 4, "d")  # same time as "a", scheduled after it
    order = []
    while len(clock):
        kind, args = clock.next()
        order.append((clock.now, kind, args[0]))
    assert order == [(0.1, 3, "c"), (0.2, 2, "b"), (0.5, 1, "a"), (0.5, 4, "d")]


def test_a_lost_message_is_late_by_one_rto_a_loss() -> None:
    import random

    net = Network(latency=0.01, loss=0.5, rto=0.2)
    delays = [net.delay(random.Random(s)) for s in range(200)]
    assert min(delays) == pytest.approx(0.01)
    assert all(round((d - 0.01) / 0.2, 6).is_integer() for d in delays)
    assert 0.05 < sum(d > 0.01 for d in delays) / 200 < 0.95


def test_the_command(run_cli: CliRunner) -> None:
    r = run_cli("simulate", "--peers", "50", "--items", "20", "--latency", "5:1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == (
        "simulated 50 peers, 20 items: latency 5 ms +/- 1, loss 0, churn 0/s, seed 0"
    )
    assert lines[1].startswith("every peer up held the message after ")
    assert "REGISTER 50" in lines[2] and "UPDATE_NBR 49" in lines[2]
    assert re.match(r"real time [0-9.]+ s, peak memory \d+ MB resident", lines[-1])
    j = json.loads(run_cli("simulate", "--peers", "5", "--items", "5", "--json").stdout)
    assert j["messages_right"] and j["converged_s"] > 0
    for bad, words in (
        (["--latency", "x"], "not MS or MS:JITTER"),
        (["--loss", "1"], "below 1"),
        (["--peers", "0"], "--peers"),
    ):
        r = run_cli("simulate", "--peers", "5", "--items", "5", *bad)
        assert r.returncode == 2 and words in error_line(r.stderr)


def test_simulated_and_real_rings_agree(tmp_path: Any) -> None:
    """8 peers, 16 items: the real ring (our tracker and 8 `cs457p2p peer` processes on
    127.0.0.2-9) and the simulated one end with every peer holding the same message, with
    the same REGISTER and UPDATE_NBR counts and QUERY counts within 10x of each other."""
    words = [f"w{i}" for i in range(16)]
    db = tmp_path / "words.txt"
    db.write_text(" ".join(words))
    tracker = subprocess.Popen(
        [*CLI, "tracker", "--host", "127.0.0.1", "--port", "0", "--db", str(db),
         "--http", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    peers: list[subprocess.Popen[str]] = []
    try:
        assert tracker.stderr is not None
        port = int(tracker.stderr.readline().split(":")[1].split()[0])
        http = int(tracker.stderr.readline().strip().rsplit(":", 1)[1].strip("/"))
        for k in range(8):
            argv = [*CLI, "peer", "--tracker", f"127.0.0.1:{port}", "--handle", f"p{k}",
                    "--listen", f"127.0.0.{k + 2}", "--linger", "30"]  # fmt: skip
            peers.append(
                subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        outs = []
        for p in peers:
            assert p.stdout is not None
            outs.append(p.stdout.readline().rstrip("\n"))
        assert outs == [" ".join(words)] * 8
        sent = 0
        for p in peers:
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=20)
            m = re.search(r"; ([\d,]+) QUERYs sent\)", err)
            assert m, err
            sent += int(m.group(1).replace(",", ""))

        def ring() -> dict[str, Any]:
            with urllib.request.urlopen(f"http://127.0.0.1:{http}/api/ring", timeout=10) as r:
                data: dict[str, Any] = json.load(r)
            return data

        counters = ring()["counters"]
    finally:
        for p in peers:
            if p.poll() is None:
                p.kill()
            p.wait(10)
        tracker.terminate()
        tracker.wait(10)
    sim = simulate(SimConfig(peers=8, items=16, latency=0.0005))
    assert sim.messages_right and sim.converged is not None
    assert counters["joins"] == sim.messages["REGISTER"] == 8
    assert counters["neighbour_updates"] == sim.messages["UPDATE_NBR"] == 7
    simulated = sim.messages["QUERY to a neighbour"] + sim.messages["QUERY to the tracker"]
    assert sent / 10 <= simulated <= sent * 10, (sent, simulated)
