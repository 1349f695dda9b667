"""``cs457p2p grade client|tracker``: a folder of submissions graded end to end, with
the student-style programs of tests/students/ as the class: a good one, broken ones, a
missing file, one that hangs, one that forks and floods its output."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import stat
import sys
import time
from pathlib import Path

import pytest

from conftest import CliRunner
from standins import error_line

STUDENTS = Path(__file__).parent / "students"
PYTHON = sys.executable

#: A client that registers, then hangs.
HANGS = """\
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.sendall(b"REGISTER")
time.sleep(3600)
"""

#: A client that starts a grandchild in a session of its own (its pid written to
#: grandchild.pid, in its own folder), floods stdout with 40 MB, and exits.
FLOODS = """\
import subprocess, sys
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(600)"],
    start_new_session=True, stdout=subprocess.DEVNULL,
)
with open("grandchild.pid", "w") as f:
    f.write(str(child.pid))
line = "x" * 1023 + "\\n"
for _ in range(40 * 1024):
    sys.stdout.write(line)
"""


def _submission(root: Path, student: str, file: str, source: str | Path | None) -> Path:
    folder = root / student
    folder.mkdir(parents=True)
    if isinstance(source, Path):
        shutil.copy(source, folder / file)
    elif source is not None:
        (folder / file).write_text(source)
    return folder


def _rows(stdout: str) -> dict[str, list[str]]:
    """The table's rows by student: [outcome, passed/required, failed or detail]."""
    rows: dict[str, list[str]] = {}
    for line in stdout.splitlines()[1:-1]:
        if line.startswith(" "):
            continue  # a hint
        parts = re.split(r"  +", line.strip(), maxsplit=3)
        rows[parts[0]] = parts[1:]
    return rows


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def _read_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def test_grade_client_end_to_end(run_cli: CliRunner, tmp_path: Path) -> None:
    subs = tmp_path / "submissions"
    clients = STUDENTS / "clients"
    _submission(subs, "alice", "client.py", clients / "good_client.py")
    _submission(subs, "bob", "client.py", clients / "single_recv_client.py")
    _submission(subs, "carol", "Client.py", clients / "good_client.py")  # wrong name
    _submission(subs, "dave", "client.py", HANGS)
    _submission(subs, "erin", "client.py", FLOODS)
    _submission(subs, "frank", "client.py", clients / "hardcoded_client.py")
    _submission(subs, ".git", "client.py", clients / "good_client.py")  # hidden: skipped
    (subs / "notes.txt").write_text("not a student")
    args = [
        "grade", "client", str(subs), "--command", f"{PYTHON} client.py {{host}} {{port}}",
        "--scenario", "reference-db", "--scenario", "empty-db", "--scenario", "chunked-answers",
        "--timeout", "4", "--jobs", "3",
    ]  # fmt: skip
    start = time.monotonic()
    r = run_cli(*args, timeout=300)
    elapsed = time.monotonic() - start
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    rows = _rows(r.stdout)
    assert sorted(rows) == ["alice", "bob", "carol", "dave", "erin", "frank"]
    assert rows["alice"][:2] == ["passed", "3/3"]
    assert rows["bob"] == ["crashed", "2/3", "chunked-answers"]
    assert rows["carol"] == ["missing", "0/3", "client.py is not in the folder carol"]
    assert rows["dave"][:2] == ["hung", "0/3"]
    assert rows["erin"][:2] == ["failed", "0/3"]
    assert rows["frank"][:2] == ["crashed", "0/3"]
    report = subs / "grading-report" / "client"
    assert r.stdout.splitlines()[-1] == (
        "graded 6 students: 1 passed, 1 failed, 1 hung, 2 crashed, 1 missing;"
        f" report: {report / 'grades.csv'}, {report / 'grades.json'}"
    )

    grades = _read_csv(report / "grades.csv")
    assert {k: v["outcome"] for k, v in grades.items()} == {
        "alice": "passed",
        "bob": "crashed",
        "carol": "missing",
        "dave": "hung",
        "erin": "failed",
        "frank": "crashed",
    }
    assert "read until the tracker closes (EOF)" in grades["bob"]["hint"]
    assert "submit client.py" in grades["carol"]["hint"]
    assert "never connected" in grades["frank"]["detail"]
    assert grades["dave"]["detail"].startswith(
        "did not exit within 4 s (killed) after 1 connection"
    )
    data = json.loads((report / "grades.json").read_text())
    assert data["students"] == 6 and data["kind"] == "client"
    by_student = {g["student"]: g for g in data["grades"]}
    assert by_student["alice"]["report"]["ok"] is True
    assert by_student["carol"]["report"] is None
    assert [c["name"] for c in by_student["bob"]["report"]["checks"]] == [
        "reference-db",
        "empty-db",
        "chunked-answers",
    ]

    # every student's output is kept; the flood is cut at the log's cap
    logs = report / "logs"
    assert sorted(p.name for p in logs.iterdir()) == [
        f"{s}.log" for s in ("alice", "bob", "carol", "dave", "erin", "frank")
    ]
    assert "== scenario chunked-answers" in (logs / "bob.log").read_text()
    assert "Traceback" in (logs / "bob.log").read_text()
    erin = logs / "erin.log"
    assert erin.stat().st_size < 3 * 4 * (1 << 20) + 100_000  # 3 runs, 4 MiB each at most
    assert "[stdout: the rest is not kept]" in erin.read_text()
    if grades["erin"]["sandbox"].startswith("sandbox: "):
        # she wrote into the sandbox's copy of her folder, never into the folder itself
        # (her grandchild died with her sandbox's pid namespace: tests/test_sandbox.py)
        assert not (subs / "erin" / "grandchild.pid").exists()
    else:
        # the grandchild that left erin's process group was killed with her runs
        pid = int((subs / "erin" / "grandchild.pid").read_text())
        assert not _alive(pid)
    # bounded: 3 hanging runs of 4 s, 3 students at a time, and the rest
    assert elapsed < 120

    # the report's folder (now inside SUBMISSIONS) is not graded as a student
    again = run_cli(*args[:-2], "--scenario", "empty-db", "--jobs", "6", timeout=300)
    assert again.returncode == 0, again.stderr
    assert sorted(_rows(again.stdout)) == sorted(rows)


def test_grade_tracker_end_to_end(run_cli: CliRunner, tmp_path: Path) -> None:
    subs = tmp_path / "class"
    trackers = STUDENTS / "trackers"
    _submission(subs, "alice", "tracker.py", trackers / "good_tracker.py")
    _submission(subs, "bob", "tracker.py", trackers / "fragile_tracker.py")
    _submission(subs, "carol", "other.py", trackers / "good_tracker.py")
    _submission(subs, "dave", "tracker.py", trackers / "silent_tracker.py")  # hangs
    _submission(subs, "erin", "tracker.py", trackers / "text_tracker.py")
    _submission(subs, "frank", "tracker.py", "import sys\nsys.exit('no database file')\n")
    _submission(subs, "gina", "tracker.py", trackers / "negative_tracker.py")
    out = tmp_path / "out"
    r = run_cli(
        "grade", "tracker", str(subs), "--command", f"{PYTHON} tracker.py {{port}}",
        "--startup", "3", "--jobs", "3", "--report-dir", str(out),
        "--csv", str(tmp_path / "class.csv"),
        timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    rows = _rows(r.stdout)
    assert rows["alice"][:2] == ["passed", "10/10"]
    assert rows["bob"][:3] == ["crashed", "9/10", "garbage"]
    assert rows["carol"] == ["missing", "0/10", "tracker.py is not in the folder carol"]
    assert rows["dave"][0] == "not-listening"
    assert re.fullmatch(r"never listened on port \d+ within 3 s", rows["dave"][2])
    assert rows["erin"][:2] == ["failed", "0/10"]
    assert rows["gina"][:2] == ["passed", "10/10"]
    assert re.search(r"^ +warning: out-of-range: position -1 answered", r.stdout, re.M)
    assert rows["frank"][0] == "crashed"
    assert rows["frank"][2].startswith("exited (exit 1) before it listened on port")
    assert rows["frank"][2].endswith("stderr: no database file")
    grades = _read_csv(tmp_path / "class.csv")
    assert grades["bob"]["detail"].startswith("exited (exit 1) while it was checked")
    assert "catch the exception" in grades["bob"]["hint"]
    assert "not a pickle" in grades["erin"]["hint"]
    assert grades["gina"]["warnings"].startswith("out-of-range: position -1 answered (")
    assert grades["alice"]["warnings"] == ""
    assert not (subs / "grading-report").exists()  # --report-dir
    assert (out / "grades.json").exists() and not (out / "grades.csv").exists()
    assert "$ " in (out / "logs" / "frank.log").read_text()
    # every tracker was stopped: nothing of theirs is left
    leftover = [p for p in os.listdir("/proc") if p.isdigit() and _runs_in(int(p), subs)]
    assert leftover == []


def _runs_in(pid: int, folder: Path) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/cwd").startswith(str(folder)) and _alive(pid)
    except OSError:
        return False


def test_a_command_that_cannot_start(run_cli: CliRunner, tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    for student in ("ann", "ben"):
        folder = _submission(subs, student, "client", "#!/bin/sh\necho hi\n")
    (subs / "ann" / "client").chmod(0o755)
    (folder / "client").chmod(stat.S_IRUSR | stat.S_IWUSR)  # ben's: not executable
    r = run_cli(
        "grade", "client", str(subs), "--command", "./client {host} {port}",
        "--scenario", "empty-db", "--timeout", "5",
        timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = _rows(r.stdout)
    assert rows["ann"][:2] == ["failed", "0/1"]  # it ran (and never connected)
    assert rows["ben"][0] == "cannot-start"
    assert "cannot run './client'" in rows["ben"][2]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["grade", "client", "{missing}", "--command", "python3 c.py {port}"], "not a folder"),
        (["grade", "client", "{empty}", "--command", "python3 c.py {port}"], "no student folders"),
        (["grade", "client", "{empty}", "--command", "python3 c.py"], "must contain {port}"),
        (["grade", "client", "{empty}", "--command", "'unclosed"], "cannot split the command"),
        (["grade", "client", "{empty}"], "--command"),
        (["grade", "tracker", "{empty}", "--command", "x {port}", "--jobs", "0"], "at least 1"),
        (
            ["grade", "client", "{student}", "--command", "x {port}", "--transport", "udp",
             "--scenario", "chunked-answers"],
            "no scenario 'chunked-answers' over udp",
        ),
    ],
)  # fmt: skip
def test_grade_usage_errors(run_cli: CliRunner, tmp_path: Path, args: list[str], says: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "student" / "s1").mkdir(parents=True)
    places = {k: str(tmp_path / k) for k in ("missing", "empty", "student")}
    r = run_cli(*[a.format(**places) if a.startswith("{") else a for a in args])
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and says in lines[0], r.stderr


def test_named_files() -> None:
    from cs457p2p.checker.grade import named_files

    assert named_files(["python3", "client.py", "{host}", "{port}"]) == ["client.py"]
    assert named_files(["./client", "{host}", "{port}"]) == ["./client"]
    assert named_files(["python3.11", "-u", "src/tracker.py", "{port}"]) == ["src/tracker.py"]
    assert named_files(["java", "-cp", ".", "Client", "{host}", "{port}"]) == []
    assert named_files(["/usr/bin/python3", "-m", "client"]) == []


def _ring_student(folder: Path, file: str, program: Path, *args: str) -> None:
    """``file`` in ``folder``: ``program`` run with the command line's arguments, then
    ``args`` (the mistake it makes)."""
    folder.mkdir(parents=True)
    shutil.copy(program, folder / program.name)  # (the sandbox sees the folder only)
    (folder / file).write_text(
        "import os, runpy, sys\n"
        f"sys.argv = [sys.argv[0], *sys.argv[1:], *{list(args)!r}]\n"
        f"here = os.path.dirname(os.path.abspath(__file__))\n"
        f"runpy.run_path(os.path.join(here, {program.name!r}), run_name='__main__')\n"
    )


def test_grade_part_2_trackers(run_cli: CliRunner, tmp_path: Path) -> None:
    subs = tmp_path / "submissions"
    ring = STUDENTS / "ring" / "ring_tracker.py"
    _ring_student(subs / "alice", "tracker.py", ring, "good", "1")
    _ring_student(subs / "bob", "tracker.py", ring, "fragile", "1")
    (subs / "carol").mkdir()
    args = [
        "grade", "tracker", str(subs), "--part", "2", "--command", f"{PYTHON} tracker.py {{port}}",
        "--wait", "3", "--timeout", "2", "--jobs", "2",
    ]  # fmt: skip
    r = run_cli(*args, timeout=240)
    assert r.returncode == 0, r.stderr
    rows = _rows(r.stdout)
    assert rows["alice"][:2] == ["passed", "9/9"]
    assert rows["bob"] == ["failed", "8/9", "garbage"]
    assert rows["carol"] == ["missing", "0/9", "tracker.py is not in the folder carol"]
    report = subs / "grading-report" / "tracker-part2"
    data = json.loads((report / "grades.json").read_text())
    assert data["part"] == 2 and data["kind"] == "tracker"


def test_grade_peers(run_cli: CliRunner, tmp_path: Path) -> None:
    subs = tmp_path / "submissions"
    ring = STUDENTS / "ring" / "ring_peer.py"
    _ring_student(subs / "alice", "peer.py", ring, "good")
    _ring_student(subs / "bob", "peer.py", ring, "no-pong")
    args = [
        "grade", "peer", str(subs), "--command",
        f"{PYTHON} peer.py {{tracker_port}} {{handle}} {{port}}", "--timeout", "8", "--jobs", "2",
    ]  # fmt: skip
    r = run_cli(*args, timeout=240)
    assert r.returncode == 0, r.stderr
    rows = _rows(r.stdout)
    assert rows["alice"][:2] == ["passed", "9/9"]
    assert rows["bob"][:2] == ["failed", "1/9"]
    assert rows["bob"][2].startswith("ping")
    log = (subs / "grading-report" / "peer" / "logs" / "alice.log").read_text()
    assert "peer.py" in log  # (the command line, and what it printed)
    r = run_cli(
        "grade", "peer", str(subs), "--command", f"{PYTHON} peer.py", "--tracker-port", "7777",
        "--jobs", "2",
    )  # fmt: skip
    assert r.returncode == 2 and "--command must contain {port}" in error_line(r.stderr)
