"""``cs457p2p check peer`` end to end, real programs on loopback: every check passes on
our peer and on a good student-style one (tests/students/ring/ring_peer.py, under
Python 3 and a real 2.7); a few that misbehave are recorded as they misbehave (a 2.7
peer whose QUERYs call code, one that never answers PING, one that exits after printing);
the course's sample peer (a Python 2 stand-in) passes but for garbage. Each mistake's
check and hint, and every other way a check goes, are unit tests of the judge over
recordings (tests/test_peer_judge.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import CLI, CliRunner, Wrapper, interpreter_named
from standins import error_line

STUDENT = Path(__file__).parent / "students" / "ring" / "ring_peer.py"
PY2_PEER = Path(__file__).parent / "py2" / "course_peer2.py"
REQUIRED = [
    "register",
    "ping",
    "query",
    "follows-update",
    "collects",
    "keeps-serving",
    "wrong-tuple",
    "garbage",
    "safe-pickles",
]


def check(run_cli: CliRunner, *args: str, timeout: float = 90.0) -> dict[str, Any]:
    r = run_cli("check", "peer", "--json", *args, timeout=timeout)
    assert r.returncode in (0, 1), r.stderr
    report: dict[str, Any] = json.loads(r.stdout)
    assert r.returncode == (0 if report["ok"] else 1)
    return report


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def student(fault: str, python: str = sys.executable) -> list[str]:
    return ["--", python, str(STUDENT), "{tracker_port}", "{handle}", "{port}", fault]


def test_our_peer_passes_every_check(run_cli: CliRunner) -> None:
    report = check(
        run_cli,
        "--",
        sys.executable,
        "-m",
        "cs457p2p",
        "peer",
        "--tracker",
        "{tracker_host}:{tracker_port}",
        "--handle",
        "{handle}",
        "--listen",
        "{host}:{port}",
    )
    checks = by_name(report)
    assert [c["name"] for c in report["checks"]] == REQUIRED
    assert report["ok"], [c for c in report["checks"] if not c["passed"]]
    assert all(not c["warning"] for c in checks.values())


def test_a_good_student_peer_passes(run_cli: CliRunner, interpreter: str) -> None:
    report = check(run_cli, *student("good", interpreter))
    assert report["ok"], [c for c in report["checks"] if not c["passed"]]


@pytest.mark.parametrize(
    ("which", "fault", "failures", "named", "says"),
    [
        # (Python 2's REDUCE pickles reach A and B: A's wait runs out, B's does not)
        ("python2", "unsafe", ["collects", "safe-pickles"], "safe-pickles", "calls code"),
        # (the checks stop at its port: the rest are recorded as not run)
        ("python3", "no-pong", REQUIRED[1:], "ping", "got closed without answering"),
        # (the program gone: every later message refused)
        ("python3", "exits", ["keeps-serving", "wrong-tuple", "garbage"], "garbage",
         "then PING got cannot connect: connection refused"),
    ],
    ids=["python2-unsafe", "python3-no-pong", "python3-exits"],
)  # fmt: skip
def test_a_misbehaving_peer_is_recorded_as_it_misbehaves(
    run_cli: CliRunner,
    request: pytest.FixtureRequest,
    which: str,
    fault: str,
    failures: list[str],
    named: str,
    says: str,
) -> None:
    interpreter = interpreter_named(which, request)
    report = check(run_cli, "--timeout", "8", *student(fault, interpreter))
    assert [c["name"] for c in report["checks"]] == REQUIRED
    assert [c["name"] for c in report["checks"] if not c["passed"]] == failures, report
    row = by_name(report)[named]
    assert says in row["detail"] and row["hint"], row


def test_the_courses_sample_peer_fails_only_garbage(run_cli: CliRunner, python2: str) -> None:
    """The Python 2 stand-in reads its handle, port and host from stdin and asks its
    neighbour every 0.3 s (2 s in the course's; the argument says)."""
    report = check(
        run_cli,
        "--stdin",
        "{handle}\\n{port}\\n{host}\\n",
        "--",
        python2,
        str(PY2_PEER),
        "{tracker_port}",
        "0.3",
    )
    checks = by_name(report)
    assert [c["name"] for c in report["checks"] if not c["passed"]] == ["garbage"]
    assert "ACK" in checks["ping"]["warning"]
    assert "not a pickled tuple" in checks["wrong-tuple"]["detail"]  # 'No data sent!'


def test_usage_errors(run_cli: CliRunner) -> None:
    r = run_cli("check", "peer")
    assert r.returncode == 2 and "missing COMMAND" in error_line(r.stderr)
    r = run_cli("check", "peer", "--tracker-port", "0", "--", "true")
    assert r.returncode == 2 and "--tracker-port: not in 1..65535" in error_line(r.stderr)
    r = run_cli("check", "peer", "--", "/nonexistent/peer")
    assert r.returncode == 2 and "cannot run" in error_line(r.stderr)


def test_a_peer_that_never_registers(run_cli: CliRunner) -> None:
    report = check(run_cli, "--timeout", "3", "--", sys.executable, "-c", "pass")
    checks = by_name(report)
    assert "exited (code 0) before it registered" in checks["register"]["detail"]
    assert all(c["detail"].startswith("not run") for c in report["checks"][1:])


def test_where_127_0_0_1_is_the_only_loopback_address_the_neighbours_listen_there(
    only_127_0_0_1: Wrapper,
) -> None:
    """As on macOS without aliases (and so without a sandbox, which would give the check
    a loopback of its own): A and B cannot have 127.0.0.2 and .3, so they listen on
    127.0.0.1 (ports of their own), and our peer still passes every check."""
    ours = [sys.executable, "-m", "cs457p2p", "peer", "--tracker", "{tracker_host}:{tracker_port}"]
    ours += ["--handle", "{handle}", "--listen", "{host}:{port}"]
    argv = [*CLI, "check", "peer", "--json", "--no-sandbox", "--", *ours]
    r = subprocess.run(
        only_127_0_0_1(argv), capture_output=True, text=True, timeout=90, check=False
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    report = json.loads(r.stdout)
    assert report["ok"] and [c["name"] for c in report["checks"]] == REQUIRED
