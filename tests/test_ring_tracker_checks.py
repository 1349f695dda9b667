"""``cs457p2p check tracker --part 2`` end to end, against real trackers on loopback: ours
and a good student-style one (tests/students/ring/ring_tracker.py) pass every check; the
course's tracker (a Python 2 stand-in) fails only garbage; two faulty student trackers,
one under a real 2.7, fail the checks they should, so the recording side meets real
misbehaviour (answers that never come, a tracker that stops serving). Each mistake's
judgement, word for word, is a unit test of the judge: tests/test_ring_tracker_judge.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import CliRunner, TrackerFactory, Wrapper, interpreter_named
from standins import error_line, free_port, wait_for

STUDENT = Path(__file__).parent / "students" / "ring" / "ring_tracker.py"
PY2_TRACKER = Path(__file__).parent / "py2" / "course_tracker2.py"
REQUIRED = [
    "echo",
    "register",
    "lone-peer",
    "neighbours",
    "hosted-items",
    "duplicate-handle",
    "ping",
    "prune",
    "garbage",
]


def check(run_cli: CliRunner, address: str, *args: str) -> dict[str, Any]:
    r = run_cli("check", "tracker", "--part", "2", "--json", address, *args, timeout=90)
    assert r.returncode in (0, 1), r.stderr
    report: dict[str, Any] = json.loads(r.stdout)
    assert r.returncode == (0 if report["ok"] else 1)
    return report


def failures(report: dict[str, Any]) -> list[str]:
    return [c["name"] for c in report["checks"] if c["required"] and not c["passed"]]


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def _started(argv: list[str], port: int) -> subprocess.Popen[str]:
    """``argv`` started, once ``port`` accepts (the probe sends nothing: an empty
    connection is an error to the course's tracker, so it is waited for by
    /proc/net/tcp, never probed, for that one)."""
    from cs457p2p.net import listening_ports

    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ok = wait_for(lambda: port in (listening_ports() or set()) or p.poll() is not None, 10)
    assert ok and p.poll() is None, "it did not listen"
    return p


@pytest.fixture
def student_tracker() -> Iterator[Any]:
    """Starts the student-style tracker with a fault, under the interpreter given."""
    started: list[subprocess.Popen[str]] = []

    def start(fault: str, interpreter: str = sys.executable) -> str:
        port = free_port()
        argv = [interpreter, str(STUDENT), str(port), fault, "1"]
        started.append(_started(argv, port))
        return f"127.0.0.1:{port}"

    yield start
    for p in started:
        p.kill()
        p.wait(10)


def test_our_tracker_passes_every_check(start_tracker: TrackerFactory, run_cli: CliRunner) -> None:
    t = start_tracker("--ping-interval", "1", "--ping-timeout", "1")
    report = check(run_cli, t.address, "--wait", "5")
    assert [c["name"] for c in report["checks"] if c["required"]] == REQUIRED
    assert report["ok"], [c for c in report["checks"] if not c["passed"]]
    checks = by_name(report)
    # at most one per join after the first (the course's five items: five joins); joins
    # less than 0.2 s apart may reach the first peer as one (the latest neighbour wins)
    data = checks["update-nbr-per-join"]["data"]
    assert data["joins"] == 5 and 2 <= data["updates"] <= 4, data
    assert checks["ping-interval"]["passed"]
    assert t.proc.poll() is None  # (and it still serves)


def test_a_good_student_tracker_passes(student_tracker: Any, run_cli: CliRunner) -> None:
    # (under Python 3: a real 2.7's ring, its pickles to the played peers, its pings and
    # prune, are met below, where dup-dies passes everything but what its mistake fails)
    report = check(run_cli, student_tracker("good"), "--wait", "5")
    assert report["ok"], [c for c in report["checks"] if not c["passed"]]
    assert "3.8 UPDATE_NBR per join" in by_name(report)["update-nbr-per-join"]["detail"]


@pytest.mark.parametrize(
    ("which", "fault", "failed", "detail"),
    [
        # (Python 2's own: an exception that ends its loop, while its pinger thread pings
        # and prunes on)
        pytest.param(
            "python2",
            "dup-dies",
            ["duplicate-handle", "garbage"],
            "a taken handle got no answer within 2 s; then ECHO got no answer within 2 s",
            id="python2-dup-dies",
        ),
        pytest.param(
            "python3",
            "fragile",
            ["garbage"],
            "garbage got no answer within 2 s; then ECHO got no answer within 2 s (the"
            " course's tracker fails this: after any error it stops serving for good, so"
            " this check runs last)",
            id="python3-fragile",
        ),
    ],
)
def test_a_tracker_that_stops_serving_is_recorded_so(
    student_tracker: Any, run_cli: CliRunner, request: pytest.FixtureRequest, which: str,
    fault: str, failed: list[str], detail: str,
) -> None:  # fmt: skip
    interpreter = interpreter_named(which, request)
    # (--timeout 2: a tracker that stopped serving still accepts into its backlog)
    report = check(run_cli, student_tracker(fault, interpreter), "--wait", "4", "--timeout", "2")
    assert failures(report) == failed, report["checks"]
    checks = by_name(report)
    assert checks[failed[0]]["detail"] == detail
    assert "keep" in checks[failed[0]]["hint"]
    assert checks["ping"]["passed"] and checks["prune"]["passed"]  # (its pinger lives on)


def test_the_courses_tracker_fails_only_garbage(python2: str, run_cli: CliRunner) -> None:
    port = free_port()
    p = _started([python2, str(PY2_TRACKER), str(port), "1"], port)
    try:
        report = check(run_cli, f"127.0.0.1:{port}", "--wait", "4")
    finally:
        p.kill()
        p.wait(10)
    assert failures(report) == ["garbage"], report["checks"]
    checks = by_name(report)
    assert "stops serving for good" in checks["garbage"]["detail"]
    assert "without a neighbour" in checks["duplicate-handle"]["warning"]
    assert checks["update-nbr-per-join"]["data"]["updates"] >= 14  # every peer, every join


def test_nothing_listening_is_one_line(run_cli: CliRunner) -> None:
    port = free_port()
    r = run_cli("check", "tracker", "--part", "2", f"127.0.0.1:{port}")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr.startswith(
        f"cs457p2p check tracker: error: nothing listens on 127.0.0.1:{port} ("
    ), r.stderr
    assert r.stderr.endswith("): is the tracker running?\n") and r.stderr.count("\n") == 1


def test_usage_errors(run_cli: CliRunner) -> None:
    r = run_cli("check", "tracker", "--part", "2", "--transport", "udp", "127.0.0.1:1")
    assert r.returncode == 2 and "--part 2 is TCP only" in error_line(r.stderr)
    r = run_cli("check", "tracker", "--part", "2", "--wait", "-1", "127.0.0.1:1")
    assert r.returncode == 2 and "--wait" in error_line(r.stderr)


def test_wait_0_skips_ping_and_prune(start_tracker: TrackerFactory, run_cli: CliRunner) -> None:
    t = start_tracker()
    start = time.monotonic()
    report = check(run_cli, t.address, "--wait", "0")
    assert report["ok"] and failures(report) == []
    ping = by_name(report)["ping"]
    assert not ping["required"] and ping["detail"] == "not run: --wait 0 (not graded)"
    assert time.monotonic() - start < 60


#: Inside a namespace of its own: our tracker (PINGs every second), then the check of
#: it; the check's report on stdout, its exit code as this script's.
_TRACKER_THEN_CHECK = """
import subprocess, sys
cli = [sys.executable, "-m", "cs457p2p"]
t = subprocess.Popen([*cli, "tracker", "--host", "127.0.0.1", "--port", "0",
                      "--ping-interval", "1", "--ping-timeout", "1"],
                     stderr=subprocess.PIPE, text=True)
try:
    line = t.stderr.readline()
    port = line.split()[2].rsplit(":", 1)[1]
    r = subprocess.run([*cli, "check", "tracker", "--part", "2", "--json", "--wait", "20",
                        "127.0.0.1:" + port], timeout=80)
    sys.exit(r.returncode)
finally:
    t.kill()
"""


def test_where_127_0_0_1_is_the_only_loopback_address_the_peers_share_it(
    only_127_0_0_1: Wrapper,
) -> None:
    """As on macOS without aliases: the played peers cannot have 127.0.0.11, .12...,
    so they all listen on 127.0.0.1 (as for a remote tracker), and ours passes."""
    r = subprocess.run(
        only_127_0_0_1([sys.executable, "-c", _TRACKER_THEN_CHECK]),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    report = json.loads(r.stdout)
    assert report["ok"] and failures(report) == []
    assert [c["name"] for c in report["checks"] if c["required"]] == REQUIRED
