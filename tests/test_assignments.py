"""``--assignment``: students judged as the course does, end to end with real programs
(each rule's mistakes are unit tests of its judge in tests/test_judges.py)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from conftest import CliRunner

STUDENTS = Path(__file__).parent / "students"
COURSE_CLIENT = STUDENTS / "clients" / "course_client.py"


def _check_client(run_cli: CliRunner, folder: Path, *command: str) -> dict[str, Any]:
    shutil.copy(COURSE_CLIENT, folder / "client.py")
    r = run_cli(
        "check", "client", "--assignment", "hw08", "--json", "--require-sandbox", "--",
        *command,
        timeout=400,
    )  # fmt: skip
    assert r.stderr == "", r.stderr
    report: dict[str, Any] = json.loads(r.stdout)
    assert r.returncode == (0 if report["ok"] else 1)
    return report


def _names(report: dict[str, Any], *, required: bool) -> list[str]:
    return [c["name"] for c in report["checks"] if c["required"] == required]


def test_a_client_that_does_what_hw08_asks_passes(
    run_cli: CliRunner, tmp_path: Path, sandbox: str
) -> None:
    """Python 3, the pause of 2 s: every rule passes; the robustness scenarios are INFO."""
    report = _check_client(
        run_cli, tmp_path, sys.executable, str(tmp_path / "client.py"), "{host}", "{port}"
    )
    assert report["ok"], [c["detail"] for c in report["checks"] if not c["passed"]]
    assert report["assignment"] == "hw08"
    assert _names(report, required=True) == [
        "register", "pickled", "all-items", "pause", "one-at-a-time", "prints-in-order", "exits",
    ]  # fmt: skip
    assert _names(report, required=False) == [
        "empty-db", "chunked-answers", "delayed-answers", "large-db",
    ]  # fmt: skip
    pause = next(c for c in report["checks"] if c["name"] == "pause")
    assert "pauses of 2.0" in pause["detail"]


def test_a_python_2_client_with_the_course_address_written_in_passes(
    run_cli: CliRunner, tmp_path: Path, python2: str, sandbox: str
) -> None:
    """The course's starter keeps ('localhost', 7777): the course's tracker is there in
    the sandbox's own network, so it is checked like any other."""
    report = _check_client(
        run_cli, tmp_path, python2, str(tmp_path / "client.py"), "x", "0", "hardcoded"
    )
    assert report["ok"], [c["detail"] for c in report["checks"] if not c["passed"]]


def test_a_client_that_does_not_pause_fails_only_the_pause(
    run_cli: CliRunner, tmp_path: Path, sandbox: str
) -> None:
    report = _check_client(
        run_cli, tmp_path, sys.executable, str(tmp_path / "client.py"), "{host}", "{port}",
        "no-pause",
    )  # fmt: skip
    failed = [c for c in report["checks"] if c["required"] and not c["passed"]]
    assert [c["name"] for c in failed] == ["pause"]
    assert "time.sleep(2)" in failed[0]["hint"]


PY2_PROGRAMS = Path(__file__).parent / "py2"
STARTER_PEER = STUDENTS / "ring" / "starter_peer.py"


def _check_peer(run_cli: CliRunner, stdin: str, *command: str) -> dict[str, Any]:
    r = run_cli(
        "check", "peer", "--assignment", "hw09", "--json", "--require-sandbox",
        "--stdin", stdin, "--", *command,
        timeout=300,
    )  # fmt: skip
    assert r.stderr == "", r.stderr
    report: dict[str, Any] = json.loads(r.stdout)
    assert r.returncode == (0 if report["ok"] else 1)
    return report


def _failed(report: dict[str, Any]) -> list[str]:
    return [c["name"] for c in report["checks"] if c["required"] and not c["passed"]]


def test_the_courses_sample_peer_passes_hw09(
    run_cli: CliRunner, python2: str, sandbox: str
) -> None:
    """A Python 2.7 stand-in of the course's sample peer (its tracker at localhost:7777,
    written in; ACK to a PING; its dict printed; 2 s between QUERYs) passes every rule
    HW09 asks; garbage, which stops it, is INFO."""
    report = _check_peer(
        run_cli, "{handle}\\n{port}\\n{host}\\n", python2, str(PY2_PROGRAMS / "course_peer2.py")
    )
    assert _failed(report) == [], report["checks"]
    assert report["assignment"] == "hw09"
    info = [c["name"] for c in report["checks"] if not c["required"]]
    assert info == ["wrong-tuple", "garbage"]


def test_a_completed_starter_with_plain_print_passes_hw09(
    run_cli: CliRunner, tmp_path: Path, sandbox: str
) -> None:
    """Python 3, print() never flushed, the server kept running: the checker runs it
    unbuffered, so what it prints is seen while it serves on."""
    shutil.copy(STARTER_PEER, tmp_path / "peer.py")
    report = _check_peer(
        run_cli, "{port}\\n{host}\\n{handle}\\n{tracker_host}\\n",
        sys.executable, str(tmp_path / "peer.py"),
    )  # fmt: skip
    assert _failed(report) == [], report["checks"]


def test_a_peer_that_does_not_pause_fails_hw09s_pause(
    run_cli: CliRunner, tmp_path: Path, python2: str, sandbox: str
) -> None:
    shutil.copy(STARTER_PEER, tmp_path / "peer.py")
    report = _check_peer(
        run_cli, "{port}\\n{host}\\n{handle}\\n{tracker_host}\\n",
        python2, str(tmp_path / "peer.py"), "0.1",
    )  # fmt: skip
    assert _failed(report) == ["pause"]
    pause = next(c for c in report["checks"] if c["name"] == "pause")
    assert "under 1.9 s" in pause["detail"] and "time.sleep(2)" in pause["hint"]


def test_the_courses_part_2_tracker_passes_p2(
    run_cli: CliRunner, python2: str, tmp_path: Path
) -> None:
    """The Python 2.7 stand-in of p2p-tracker.py (pinging every 2 s here, not 20):
    every check the course asks of a Part 2 tracker passes; garbage is INFO."""
    import subprocess

    from cs457p2p.net import free_port

    port = free_port()
    tracker = subprocess.Popen(
        [python2, str(PY2_PROGRAMS / "course_tracker2.py"), str(port), "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        from test_course_tracker import _wait_listening

        _wait_listening(port)
        r = run_cli(
            "check", "tracker", "--part", "2", "--assignment", "p2", "--json", "--wait", "10",
            f"127.0.0.1:{port}",
            timeout=120,
        )  # fmt: skip
    finally:
        tracker.kill()
        tracker.wait(10)
    report = json.loads(r.stdout)
    assert r.returncode == 0, report["checks"]
    assert [c["name"] for c in report["checks"] if not c["required"]][-1] == "garbage"
