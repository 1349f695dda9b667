"""The checker's fix hints (``cs457p2p.checker.hints``), each shown by running a real
student-style program from ``tests/students/`` that makes the mistake it names: the
check that catches the mistake fails, and its hint says how to fix it.

Of the student trackers, only the good one, the one that dies of garbage (the recording
side meets a tracker that stops serving) and the one that never listens still run here;
the others' mistakes (text or JSON answers, waiting for EOF, protocol 4, position -1)
are unit tests of the judge, word for word: tests/test_tracker_judge.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import CliRunner
from cs457p2p.net import listening_ports
from standins import free_port, wait_for

STUDENTS = Path(__file__).parent / "students"
TCP_SCENARIOS = [
    "reference-db",
    "empty-db",
    "large-db",
    "course-tracker",
    "chunked-answers",
    "delayed-answers",
]
REQUIRED = [
    "register",
    "items",
    "pickled",
    "permutation",
    "message",
    "second-client",
    "out-of-range",
    "garbage",
    "concurrent",
    "pickle-protocol",
]


def client(name: str) -> list[str]:
    return [sys.executable, str(STUDENTS / "clients" / f"{name}.py"), "{host}", "{port}"]


def check(run_cli: CliRunner, kind: str, *args: str, timeout: float = 60) -> dict[str, Any]:
    r = run_cli("check", kind, "--json", *args, timeout=timeout)
    assert r.stderr == "", r.stderr
    report: dict[str, Any] = json.loads(r.stdout)
    assert r.returncode == (0 if report["ok"] else 1)
    return report


def check_client(run_cli: CliRunner, name: str, *scenarios: str, **kw: Any) -> dict[str, Any]:
    options = [f"--scenario={s}" for s in scenarios]
    timeout = [f"--timeout={kw['timeout']}"] if "timeout" in kw else []
    return check(run_cli, "client", *options, *timeout, "--", *client(name))


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def failed(report: dict[str, Any]) -> list[str]:
    return [c["name"] for c in report["checks"] if c["required"] and not c["passed"]]


def assert_every_failure_has_a_hint(report: dict[str, Any]) -> None:
    for c in report["checks"]:
        if c["required"] and not c["passed"]:
            assert c["hint"], c
        else:
            assert c["hint"] == "", c


# ------------------------------------------------------------------------ clients


def test_the_good_student_client_passes(run_cli: CliRunner) -> None:
    """(Without this, the failures below could be the programs' own.)"""
    report = check(run_cli, "client", "--", *client("good_client"))
    assert report["ok"], report["summary"]
    assert [c["name"] for c in report["checks"]] == TCP_SCENARIOS
    for c in report["checks"]:
        assert c["data"]["connections"] == c["data"]["items"] + 1  # one per request
        assert c["data"]["requests"] == c["data"]["items"] + 1


def test_a_command_that_cannot_start_is_not_told_about_addresses(
    run_cli: CliRunner, tmp_path: Path
) -> None:
    """A program whose interpreter is not there (exit 127 from the exec) is told to fix
    its command, not that its address is hard-coded."""
    program = tmp_path / "client.py"
    program.write_text("#!/opt/no-such-interpreter/python\nprint(1)\n")
    program.chmod(0o755)
    report = check(
        run_cli, "client", "--scenario=reference-db", "--", str(program), "{host}", "{port}"
    )
    result = checks(report)["reference-db"]
    assert not result["passed"]
    assert result["detail"].startswith("the command could not be started (exit 12"), result
    assert "check the command after --" in result["hint"]
    assert "hard-coded" not in result["detail"] + result["hint"]


def test_a_program_that_stops_on_its_own_error_is_not_told_about_addresses(
    run_cli: CliRunner, tmp_path: Path
) -> None:
    """A client that stops before connecting, on an import that the sandbox's Python does
    not have, is told about that error, not that its address is hard-coded."""
    program = tmp_path / "client.py"
    program.write_text("import no_such_module_here\n")
    report = check(
        run_cli, "client", "--scenario=reference-db", "--", sys.executable, str(program),
        "{host}", "{port}",
    )  # fmt: skip
    result = checks(report)["reference-db"]
    assert not result["passed"]
    assert result["detail"].startswith("the program stopped before it connected (exit 1)")
    assert "No module named 'no_such_module_here'" in result["detail"]
    assert result["hint"].startswith("the program stopped before it connected: fix the error")
    assert "hard-coded" not in result["detail"] + result["hint"]


def test_one_recv_per_answer_fails_chunked_answers(run_cli: CliRunner) -> None:
    report = check_client(run_cli, "single_recv_client", "reference-db", "chunked-answers")
    assert failed(report) == ["chunked-answers"]
    hint = checks(report)["chunked-answers"]["hint"]
    assert "read until the tracker closes (EOF)" in hint
    assert "several pieces" in hint
    assert_every_failure_has_a_hint(report)


def test_ascii_positions_fail_against_the_course_tracker(run_cli: CliRunner) -> None:
    report = check_client(run_cli, "ascii_client", "reference-db", "course-tracker")
    assert failed(report) == ["course-tracker"]  # our tracker takes digits; it does not
    c = checks(report)["course-tracker"]
    assert c["detail"].startswith("exit 1; nothing on stdout; stderr: ")
    assert "sent the digits b'0', not a pickle" in c["detail"]
    assert "send pickle.dumps(i, 2) (a pickled int), not str(i)" in c["hint"]


def test_python_3s_default_pickles_fail_against_the_course_tracker(run_cli: CliRunner) -> None:
    """pickle.dumps(i) of Python 3 writes protocol 4 (5 from 3.14), which the course's
    Python 2 tracker refuses: our tracker takes it, the course's does not."""
    report = check_client(run_cli, "protocol4_client", "reference-db", "course-tracker")
    assert failed(report) == ["course-tracker"]
    c = checks(report)["course-tracker"]
    assert "a protocol 4 pickle: Python 2 cannot read it" in c["detail"]
    assert "pickle.dumps(i, 2)" in c["hint"]


def test_a_hard_coded_address_fails_every_scenario_but_the_courses(
    run_cli: CliRunner, sandbox: str
) -> None:
    """It never reaches the scenario's tracker: not even ``empty-db`` passes (once it did,
    by its exit code alone). Only the course's tracker, at the course's 127.0.0.1:7777 in
    the sandbox's own network, serves it."""
    report = check_client(run_cli, "hardcoded_client", *TCP_SCENARIOS, timeout=5)
    wrong = [s for s in TCP_SCENARIOS if s != "course-tracker"]
    assert failed(report) == wrong
    assert checks(report)["course-tracker"]["passed"]
    for c in report["checks"]:
        if c["name"] == "course-tracker":
            continue
        assert re.match(
            r"the client never connected to 127\.0\.0\.1:\d+: is the address hard-coded\?",
            c["detail"],
        ), c["detail"]
        assert c["data"]["connections"] == 0
        assert "Take the host and port from the command line" in c["hint"]


def test_values_by_position_fail_with_the_seqnum_hint(run_cli: CliRunner) -> None:
    report = check_client(run_cli, "by_position_client", "reference-db", "empty-db")
    assert failed(report) == ["reference-db"]
    c = checks(report)["reference-db"]
    assert "position order, not in SEQNUM order" in c["detail"]
    assert "place each VALUE at index SEQNUM" in c["hint"]


def test_one_value_per_line_fails_with_the_one_line_hint(run_cli: CliRunner) -> None:
    report = check_client(run_cli, "one_per_line_client", "reference-db")
    assert failed(report) == ["reference-db"]
    c = checks(report)["reference-db"]
    assert "not on one line joined by single spaces" in c["detail"]
    assert "join the VALUEs with single spaces" in c["hint"]


def test_a_client_killed_at_the_timeout_says_how_far_it_got(run_cli: CliRunner) -> None:
    """It sleeps 1 s after each request: killed at 3 s, after about 3 of 17."""
    report = check_client(run_cli, "sleepy_client", "reference-db", timeout=3)
    c = checks(report)["reference-db"]
    match = re.fullmatch(
        r"did not exit within 3 s \(killed\) after (\d+) connections? and (\d+) requests?;"
        r" nothing on stdout",
        c["detail"],
    )
    assert match, c["detail"]
    made, sent = int(match[1]), int(match[2])
    assert made == sent == c["data"]["connections"] == c["data"]["requests"]
    assert 1 <= sent <= 4
    assert c["hint"].startswith(f"it sent {sent} of the 17 requests it needs before it was killed")


# ----------------------------------------------------------------------- trackers


@pytest.fixture
def student_tracker() -> Iterator[Any]:
    """``student_tracker("good_tracker")``: run it on a free port; its address once it
    accepts connections. Every one started is killed at the end of the test."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, listens: bool = True) -> str:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, str(STUDENTS / "trackers" / f"{name}.py"), str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        if listens:  # (a probe connection would be its first client: look, do not touch)
            assert wait_for(lambda: _listens(port) or proc.poll() is not None, 20)
            assert proc.poll() is None, f"{name} exited"
        return f"127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(10)


def _listens(port: int) -> bool:
    ports = listening_ports()
    if ports is None:
        pytest.skip("this system does not tell which ports are listened on")
    return port in ports


def test_the_good_student_tracker_passes(run_cli: CliRunner, student_tracker: Any) -> None:
    report = check(run_cli, "tracker", student_tracker("good_tracker"))
    assert report["ok"], report["summary"]
    assert [c["name"] for c in report["checks"] if c["required"]] == REQUIRED
    assert report["message"] == (
        "Now is the time for all good coders to review the use of threads in python."
    )
    assert checks(report)["out-of-range"]["warning"] == ""
    assert_every_failure_has_a_hint(report)


def test_a_tracker_that_dies_on_garbage_gets_the_catch_hint(
    run_cli: CliRunner, student_tracker: Any
) -> None:
    report = check(run_cli, "tracker", student_tracker("fragile_tracker"))
    assert failed(report) == ["garbage"]
    c = checks(report)["garbage"]
    assert "the tracker no longer serves" in c["detail"]
    assert "the tracker died on this request: catch the exception" in c["hint"]


def test_python_2_cannot_read_what_protocol_4_sends(python2: str, student_tracker: Any) -> None:
    """The hint's claim, checked with a real Python 2: the REGISTER answer of the
    protocol-4 tracker does not unpickle; the good tracker's does."""
    script = (
        "import pickle, socket, sys\n"
        "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
        "s.sendall(b'REGISTER')\n"
        "data = b''\n"
        "while True:\n"
        "    chunk = s.recv(1024)\n"
        "    if not chunk: break\n"
        "    data += chunk\n"
        "try:\n"
        "    print(pickle.loads(data))\n"  # (bytes from our own test tracker)
        "except ValueError as e:\n"
        "    print('ValueError: %s' % e)\n"
    )
    outputs = []
    for name in ("protocol4_tracker", "good_tracker"):
        port = student_tracker(name).rsplit(":", 1)[1]
        r = subprocess.run(
            [python2, "-c", script, port], capture_output=True, text=True, timeout=20
        )
        outputs.append(r.stdout.strip())
    assert re.fullmatch(r"ValueError: unsupported pickle protocol: [45]", outputs[0]), outputs
    assert outputs[1] == "16"


def test_a_tracker_not_listening_gets_one_line(run_cli: CliRunner, student_tracker: Any) -> None:
    address = student_tracker("silent_tracker", listens=False)
    time.sleep(0.5)  # (it binds, never listens)
    r = run_cli("check", "tracker", address, "--timeout", "2")
    assert (r.returncode, r.stdout) == (1, "")
    assert re.fullmatch(
        rf"cs457p2p check tracker: error: nothing listens on {re.escape(address)}"
        r" \(.*refused.*\): is the tracker running\?\n",
        r.stderr,
    ), r.stderr
