"""The sandbox every student's program runs in (cs457p2p.checker.sandbox): its rules as
pure code, then hostile submissions (tests/students/hostile/) graded and checked as an
instructor and a student would, each attack contained. A few attacks are run once
without the sandbox too, to show they are real."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CLI, SRC, CliRunner, sandbox_processes, with_share
from cs457p2p.checker.runner import unbuffered
from cs457p2p.checker.sandbox import SandboxLimits, exit_code, limit_hit
from cs457p2p.checker.sandbox.view import (
    bwrap_command,
    copyable,
    named_outside,
    resolve,
    system_folder,
)

STUDENTS = Path(__file__).parent / "students"
HOSTILE = STUDENTS / "hostile"
PYTHON = sys.executable
LIMITS = SandboxLimits()

# ------------------------------------------------------------------ pure rules


@pytest.mark.parametrize(
    ("exit", "stderr", "hits", "says"),
    [
        (None, "", ["memory"], "exceeded memory 512 MiB"),
        (-9, "", ["processes"], "exceeded 128 processes"),
        (-24, "", [], "exceeded CPU time 120 s"),
        (-25, "", [], "exceeded file size 64 MiB"),
        (1, "OSError: [Errno 28] No space left on device", [], "exceeded disk 64 MiB"),
        (1, "OSError: [Errno 24] Too many open files", [], "exceeded open files 1024"),
        (1, "MemoryError", [], "exceeded memory 512 MiB"),
        (1, "BlockingIOError: [Errno 11] Resource temporarily unavailable (fork)", [],
         "exceeded 128 processes"),
        (1, "RuntimeError: can't start new thread", [], "exceeded 128 processes"),
        (1, "Traceback ... ZeroDivisionError", [], ""),
        (0, "", [], ""),
    ],
)  # fmt: skip
def test_limit_hit_names_the_limit(
    exit: int | None, stderr: str, hits: list[str], says: str
) -> None:
    assert limit_hit(exit, stderr, hits, LIMITS) == says


def test_exit_codes_of_a_sandbox_read_as_a_plain_run() -> None:
    assert exit_code(137, True) == -9  # bwrap: 128 + SIGKILL
    assert exit_code(152, True) == -24  # SIGXCPU
    assert exit_code(137, False) == 137
    assert exit_code(1, True) == 1 and exit_code(None, True) is None


def test_python_runs_unbuffered() -> None:
    assert unbuffered(["python3", "client.py", "x"]) == ["python3", "-u", "client.py", "x"]
    assert unbuffered(["/usr/bin/python2.7", "-u", "a.py"]) == ["/usr/bin/python2.7", "-u", "a.py"]
    assert unbuffered(["./client", "x"]) == ["./client", "x"]


def test_folders_the_sandbox_takes(tmp_path: Path) -> None:
    assert system_folder(Path("/")) and system_folder(Path("/usr/lib"))
    assert system_folder(tmp_path) is None
    (tmp_path / "client.py").write_text("print(1)\n")
    assert copyable(tmp_path, LIMITS)
    (tmp_path / "big.bin").write_bytes(b"\0" * 1024)
    assert not copyable(tmp_path, SandboxLimits(disk=1000))


def test_a_relative_command_that_leads_out_of_the_folder(tmp_path: Path) -> None:
    """``.venv/bin/python`` in the folder is a link to an interpreter elsewhere: the
    sandbox runs that interpreter, and shows its installation where it is not the
    system's. A relative path that stays in the folder is left as it is."""
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(os.path.realpath(sys.executable))
    (tmp_path / "run.sh").write_text("")
    program, binds = resolve(".venv/bin/python", tmp_path)
    assert program == os.path.realpath(sys.executable)
    if not program.startswith("/usr/"):
        assert any(program.startswith(b.rstrip("/") + "/") for b in binds)
    assert resolve("./run.sh", tmp_path) == ("./run.sh", [])
    assert resolve("./missing", tmp_path) == ("./missing", [])


def test_files_named_outside_the_folder(tmp_path: Path) -> None:
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    (outside / "c.py").write_text("")
    args = [str(outside / "c.py"), str(inside), "relative.py", "{port}", str(outside)]
    files, folders = named_outside(args, inside)
    assert files == [str(outside / "c.py")] and folders == [str(outside)]


def test_the_sandbox_command_line(tmp_path: Path) -> None:
    """Namespaces, a private copy of the folder at its path with its disk limit, the
    limits before the program, the uid dropped; the folder itself only read-only, and
    no user namespace inside for a non-root grader."""
    folder = tmp_path / "alice"
    folder.mkdir()

    def command(root: bool, copy: bool) -> list[str]:
        return bwrap_command(
            "bwrap", LIMITS, ["/usr/bin/sh", "client.sh", "1"], folder=folder, copy=copy,
            root=root, cgroup=True, uid=60003 if root else None, share=[], status=9, fds=[9],
        )  # fmt: skip

    argv = command(True, True)
    text = " ".join(argv)
    for flag in ("--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session"):
        assert flag in argv
    assert "--unshare-net" not in argv  # (the check's own namespace, inherited)
    assert f"--size {LIMITS.disk} --tmpfs {folder}" in text
    assert f"--ro-bind {folder} /run/cs457p2p/submission" in text
    assert f"--chdir {folder}" in text and "--clearenv" in argv
    assert "--nproc=128" in argv and f"--as={4 * LIMITS.memory}" in argv
    assert argv[-3:] == ["/usr/bin/sh", "client.sh", "1"]
    assert " copy 60003 9 " in text and "--unshare-user" not in argv
    assert "/home" not in argv and "/root" not in argv
    ro = command(False, False)
    assert f"--ro-bind {folder} {folder}" in " ".join(ro)
    assert "--unshare-user" in ro and "--disable-userns" in ro


# ------------------------------------------------------------------ hostile classes


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` and the hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@contextlib.contextmanager
def _host_service() -> Iterator[tuple[int, list[str]]]:
    """A TCP service of the host on 127.0.0.1 (outside every sandbox), and the
    connections it got."""
    got: list[str] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, addr = server.accept()
            except OSError:
                continue
            got.append(str(addr))
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield server.getsockname()[1], got
    finally:
        stop.set()
        t.join(5)
        server.close()


def _hostile(folder: Path, mode: str, **targets: object) -> None:
    folder.mkdir(parents=True)
    shutil.copy(HOSTILE / "hostile_client.py", folder / "client.py")
    plan = {"mode": mode, "read": [], "write": [], "connect": [], "forge": [], "marker": ""}
    plan.update(targets)
    (folder / "attacks.json").write_text(json.dumps(plan))


def _worked(log: Path) -> list[str]:
    """What the hostile client printed it managed to do (the last such line)."""
    lines = [line for line in log.read_text().splitlines() if line.startswith('{"worked"')]
    return list(json.loads(lines[-1])["worked"]) if lines else []


#: The uids of this file's graders' programs (--uid-base): apart from any other sandbox
#: that runs on this machine meanwhile.
UID_BASE = 61000 + os.getpid() % 3000


def _wait_gone(seconds: float) -> list[int]:
    end = time.monotonic() + seconds
    while (left := sandbox_processes(UID_BASE, 10)) and time.monotonic() < end:
        time.sleep(0.1)
    return left


def _rows(csv_path: Path) -> dict[str, dict[str, str]]:
    import csv

    with csv_path.open(newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def test_a_hostile_class_is_graded_and_contained(
    run_cli: CliRunner, tmp_path: Path, sandbox: str
) -> None:
    """One grading run over a class where most students attack the grader: reading and
    overwriting classmates' work, a daemon forging grades.csv, killing the grader, a fork
    bomb, memory over three processes, filling the disk. The honest students are graded
    right, nothing outside the submissions' copies changes, nothing of theirs is left
    running, and each limit hit is named."""
    course = tmp_path / "course"
    subs = course / "class"
    report = course / "report"
    key = course / "answer_key.txt"
    marker = course / "marker.txt"
    course.mkdir()
    key.write_text("the secret message\n")
    good = STUDENTS / "clients" / "good_client.py"
    for name in ("alice", "zed"):
        (subs / name).mkdir(parents=True)
        shutil.copy(good, subs / name / "client.py")
    with _host_service() as (port, connections):
        _hostile(
            subs / "mallory",
            "snoop",
            read=[str(subs / "alice" / "client.py"), str(key)],
            write=[str(subs / "zed" / "client.py"), str(course / "evil.txt")],
            connect=[port],
        )
        forged = [str(report / "grades.csv"), str(report / "grades.json")]
        _hostile(subs / "dan", "daemon", forge=forged, marker=str(marker), linger=15)
        _hostile(subs / "kim", "killer")
        _hostile(subs / "fern", "forkbomb")
        _hostile(subs / "hugo", "hog")
        _hostile(subs / "fill", "filler")
        before = _tree(subs)
        r = run_cli(
            "grade", "client", str(subs), "--command", f"{PYTHON} client.py {{host}} {{port}}",
            "--scenario", "reference-db", "--timeout", "8", "--jobs", "3",
            "--report-dir", str(report), "--require-sandbox", "--uid-base", str(UID_BASE),
            timeout=240,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert r.stderr == ""
        time.sleep(1.0)  # (a daemon that escaped would be writing by now)
        assert connections == []
    assert _wait_gone(10) == [], "processes of a sandboxed run outlived it"
    assert not marker.exists() and not (course / "evil.txt").exists()
    assert _tree(subs) == before  # no submission changed, none gained a file
    rows = _rows(report / "grades.csv")
    assert "mallory,passed" not in (report / "grades.csv").read_text()
    assert sorted(rows) == ["alice", "dan", "fern", "fill", "hugo", "kim", "mallory", "zed"]
    assert rows["alice"]["outcome"] == "passed" and rows["zed"]["outcome"] == "passed"
    assert all(row["sandbox"] == rows["alice"]["sandbox"] for row in rows.values())
    assert rows["alice"]["sandbox"].startswith("sandbox: ")
    # the snoop saw and reached nothing but its own namespace
    worked = _worked(report / "logs" / "mallory.log")
    assert worked == ["listened on 0.0.0.0:7777 (in its own namespace, if sandboxed)"]
    # each limit named as an outcome
    assert rows["fern"]["outcome"] == "over-limit", rows["fern"]
    assert "exceeded 128 processes" in rows["fern"]["detail"]
    assert rows["fill"]["outcome"] == "over-limit", rows["fill"]
    assert "exceeded disk 64 MiB" in rows["fill"]["detail"]
    if "(cgroup v" in sandbox:  # run-wide memory: only a cgroup can count it
        assert rows["hugo"]["outcome"] == "over-limit", rows["hugo"]
        assert "exceeded memory 512 MiB" in rows["hugo"]["detail"]
    assert rows["kim"]["outcome"] in ("failed", "hung", "crashed")


def test_without_the_sandbox_the_attacks_are_real(run_cli: CliRunner, tmp_path: Path) -> None:
    """The same snoop, graded with --no-sandbox: it reads the answer key and overwrites a
    classmate's program (so the contained run above shows containment, not a harmless
    program)."""
    course = tmp_path / "course"
    subs = course / "class"
    key = course / "answer_key.txt"
    course.mkdir()
    key.write_text("the secret message\n")
    (subs / "zed").mkdir(parents=True)
    shutil.copy(STUDENTS / "clients" / "good_client.py", subs / "zed" / "client.py")
    _hostile(subs / "mallory", "snoop", read=[str(key)], write=[str(subs / "zed" / "client.py")])
    r = run_cli(
        "grade", "client", str(subs), "--command", f"{PYTHON} client.py {{host}} {{port}}",
        "--scenario", "reference-db", "--timeout", "8", "--report-dir", str(course / "report"),
        "--no-sandbox",
        timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    worked = _worked(course / "report" / "logs" / "mallory.log")
    assert f"read {key}" in worked and f"wrote {subs / 'zed' / 'client.py'}" in worked
    assert "pwned" in (subs / "zed" / "client.py").read_text()
    rows = _rows(course / "report" / "grades.csv")
    assert rows["mallory"]["sandbox"] == "no sandbox: turned off (--no-sandbox)"


def test_check_client_leaves_no_daemon(run_cli: CliRunner, tmp_path: Path, sandbox: str) -> None:
    """A student's own check: the daemon its client leaves dies with the sandbox, and a
    child started at its first instruction already runs under the limits."""
    folder = tmp_path / "hw"
    marker = tmp_path / "marker.txt"
    _hostile(folder, "daemon", marker=str(marker), linger=15)
    r = run_cli(
        "check", "client", "--json", "--scenario", "reference-db", "--timeout", "5",
        "--uid-base", str(UID_BASE), "--", PYTHON, str(folder / "client.py"), "{host}", "{port}",
        timeout=60,
    )  # fmt: skip
    assert r.returncode == 1 and r.stderr == ""
    time.sleep(1.0)
    assert not marker.exists()
    assert _wait_gone(10) == []


def _as_peer(folder: Path) -> None:
    """A hostile submission's ``peer.py``: the hostile client, given the tracker's port
    as its PORT (``peer.py TRACKER_PORT HANDLE PORT``, as the honest peers are run)."""
    (folder / "peer.py").write_text(
        "import os, runpy, sys\n"
        "sys.argv = [sys.argv[0], '127.0.0.1', sys.argv[1]]\n"
        "here = os.path.dirname(os.path.abspath(__file__))\n"
        "runpy.run_path(os.path.join(here, 'client.py'), run_name='__main__')\n"
    )


def test_hostile_peers_are_contained_under_grade_peer_and_check_peer(
    run_cli: CliRunner, tmp_path: Path, sandbox: str
) -> None:
    """Part 2's commands run students' programs through the same sandbox: a snoop and a
    daemon submitted as peers read, write, reach and leave nothing, and the honest peer
    beside them passes."""
    course = tmp_path / "course"
    subs = course / "class"
    report = course / "report"
    key = course / "answer_key.txt"
    marker = course / "marker.txt"
    course.mkdir()
    key.write_text("the secret message\n")
    honest = subs / "alice"
    honest.mkdir(parents=True)
    ring = STUDENTS / "ring" / "ring_peer.py"
    shutil.copy(ring, honest / ring.name)
    (honest / "peer.py").write_text(
        "import os, runpy, sys\n"
        "sys.argv = [sys.argv[0], *sys.argv[1:], 'good']\n"
        "here = os.path.dirname(os.path.abspath(__file__))\n"
        "runpy.run_path(os.path.join(here, 'ring_peer.py'), run_name='__main__')\n"
    )
    with _host_service() as (port, connections):
        _hostile(
            subs / "mallory",
            "snoop",
            read=[str(honest / "peer.py"), str(key)],
            write=[str(honest / "peer.py"), str(course / "evil.txt")],
            connect=[port],
        )
        _as_peer(subs / "mallory")
        forged = [str(report / "grades.csv"), str(report / "grades.json")]
        _hostile(subs / "dan", "daemon", forge=forged, marker=str(marker), linger=15)
        _as_peer(subs / "dan")
        before = _tree(subs)
        r = run_cli(
            "grade", "peer", str(subs), "--command",
            f"{PYTHON} peer.py {{tracker_port}} {{handle}} {{port}}", "--timeout", "8",
            "--jobs", "3", "--report-dir", str(report), "--require-sandbox",
            "--uid-base", str(UID_BASE),
            timeout=240,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert r.stderr == ""
        # the student's own check: the daemon dies with its sandbox there too
        checked = run_cli(
            "check", "peer", "--json", "--timeout", "5", "--uid-base", str(UID_BASE), "--",
            PYTHON, str(subs / "dan" / "peer.py"), "{tracker_port}", "{handle}", "{port}",
            timeout=120,
        )  # fmt: skip
        assert checked.returncode == 1 and checked.stderr == ""
        time.sleep(1.0)  # (a daemon that escaped would be writing by now)
        assert connections == []
    assert _wait_gone(10) == [], "processes of a sandboxed run outlived it"
    assert not marker.exists() and not (course / "evil.txt").exists()
    assert _tree(subs) == before
    rows = _rows(report / "grades.csv")
    assert sorted(rows) == ["alice", "dan", "mallory"]
    assert rows["alice"]["outcome"] == "passed", rows["alice"]
    assert rows["dan"]["outcome"] != "passed" and rows["mallory"]["outcome"] != "passed"
    worked = _worked(report / "logs" / "mallory.log")
    assert worked == ["listened on 0.0.0.0:7777 (in its own namespace, if sandboxed)"]


def test_limits_hold_from_the_first_instruction(tmp_path: Path, sandbox: str) -> None:
    """The program's very first process, and a child it starts at once, already run
    under the limits, as an unprivileged uid, with nothing else in sight."""
    import asyncio

    from cs457p2p.checker.runner import Program
    from cs457p2p.checker.sandbox import Jail, SandboxPolicy, contained

    script = "cat /proc/self/limits; id -u; ls /; sh -c 'cat /proc/self/limits'"

    async def body(jail: Jail | None) -> str:
        program = Program(["sh", "-c", script], cwd=tmp_path, jail=jail)
        await program.start()
        await program.wait(20)
        run = await program.stop()
        return run.stdout

    out, line = asyncio.run(contained(SandboxPolicy(), tmp_path, body, slot=7))
    assert line == sandbox
    lines = out.splitlines()
    limits = [line for line in lines if line.startswith(("Max processes", "Max open files"))]
    assert (
        limits
        == [
            "Max processes             128                  128                  processes ",
            "Max open files            1024                 1024                 files     ",
        ]
        * 2
    )
    if os.geteuid() == 0:
        assert "60007" in lines  # uid_base + slot
    assert "home" not in lines and "root" not in lines  # (ls /: the sandbox's view)


def test_a_hoarding_peer_gets_a_report_at_1024_open_files(tmp_path: Path, sandbox: str) -> None:
    """A Part 2 peer that opens and holds 2,700 connections to the tracker and its
    neighbour, checked by a checker limited to 1,024 open files: a report with FAIL
    rows and reasons, no traceback."""
    shutil.copy(HOSTILE / "hoarding_peer.py", tmp_path / "peer.py")
    args = [
        "check", "peer", "--json", "--timeout", "15", "--",
        PYTHON, "peer.py", "{tracker_port}", "{handle}", "{port}",
    ]  # fmt: skip
    r = subprocess.run(
        ["prlimit", "--nofile=1024:1024", *CLI, *with_share(args)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert r.stderr == ""
    report = json.loads(r.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["register"]["passed"] and not checks["ping"]["passed"]
    assert checks["ping"]["detail"], checks["ping"]


def test_a_hoarding_tracker_gets_a_report_at_1024_open_files() -> None:
    """``check tracker --part 2`` of a tracker that opens and holds 900 connections to
    every peer that registers, from a checker limited to 1,024 open files."""
    from cs457p2p.net import free_port

    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC}
    tracker = subprocess.Popen(
        [PYTHON, str(HOSTILE / "hoarding_tracker.py"), str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        r = subprocess.run(
            ["prlimit", "--nofile=1024:1024", *CLI, "check", "tracker", "--part", "2",
             "--json", "--wait", "0", "--timeout", "2", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
    finally:
        os.killpg(tracker.pid, 9)
        tracker.wait(10)
    assert r.stderr == "", r.stderr[-2000:]
    assert r.returncode == 1
    report = json.loads(r.stdout)
    names = [c["name"] for c in report["checks"]]
    assert names[:2] == ["echo", "register"]
    assert "checker-load" in names


def test_grading_ring_trackers_survives_a_hoarder(
    run_cli: CliRunner, tmp_path: Path, sandbox: str
) -> None:
    """``grade tracker --part 2 --jobs 2`` at 1,024 open files: the hoarder fails, the
    honest tracker graded beside it passes."""
    subs = tmp_path / "class"
    (subs / "alice").mkdir(parents=True)
    shutil.copy(STUDENTS / "ring" / "ring_tracker.py", subs / "alice" / "impl.py")
    (subs / "alice" / "tracker.py").write_text(
        "import runpy, sys\nsys.argv += ['good', '1']\n"
        "runpy.run_path('impl.py', run_name='__main__')\n"
    )
    (subs / "mallory").mkdir()
    shutil.copy(HOSTILE / "hoarding_tracker.py", subs / "mallory" / "tracker.py")
    args = [
        "grade", "tracker", str(subs), "--part", "2", "--command", f"{PYTHON} tracker.py {{port}}",
        "--wait", "3", "--timeout", "2", "--jobs", "2", "--report-dir", str(tmp_path / "out"),
    ]  # fmt: skip
    r = subprocess.run(
        ["prlimit", "--nofile=1024:1024", *CLI, *with_share(args)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert r.returncode == 0 and r.stderr == "", r.stderr[-2000:]
    rows = _rows(tmp_path / "out" / "grades.csv")
    assert rows["alice"]["outcome"] == "passed", rows["alice"]
    assert rows["mallory"]["outcome"] != "passed"


_COMPILED = shutil.ignore_patterns("__pycache__", "*.so")


def test_a_grader_that_is_not_root_sandboxes_too(tmp_path: Path, sandbox: str) -> None:
    """``check client`` run by an ordinary user (uid 65534 here): the sandbox is made in
    a user namespace of its own; the client passes, and reads nothing outside its
    folder."""
    python = "/usr/bin/python3"
    if os.geteuid() != 0 or not os.path.exists(python):
        pytest.skip("needs root to become another user, and a system python3")
    home = Path(tempfile.mkdtemp(prefix="cs457p2p-user-"))
    try:
        os.chmod(home, 0o755)
        secret = home / "secret.txt"
        secret.write_text("only for the instructor")
        os.chmod(secret, 0o644)  # (readable by the user: the sandbox must hide it)
        hw = home / "hw"
        _hostile(hw, "snoop", read=[str(secret)])
        shutil.copy(STUDENTS / "clients" / "good_client.py", hw / "good.py")
        # (the package copied where that user can read it: a checkout may sit under a
        # folder only root can enter, as a CI clone in a mktemp -d does)
        src = home / "src"
        shutil.copytree(Path(SRC) / "cs457p2p", src / "cs457p2p", ignore=_COMPILED)
        subprocess.run(["chown", "-R", "65534:65534", str(home)], check=True)
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(src), "CS457P2P_PURE": "1",
               "HOME": str(home)}  # fmt: skip
        base = [
            "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            python, "-m", "cs457p2p", "check", "client", "--json", "--share", str(src),
            "--scenario", "reference-db", "--timeout", "10", "--",
        ]  # fmt: skip
        good = subprocess.run(
            [*base, python, "good.py", "{host}", "{port}"],
            capture_output=True, text=True, timeout=60, cwd=hw, env=env, check=False,
        )  # fmt: skip
        assert good.stderr == "", good.stderr
        report = json.loads(good.stdout)
        assert report["ok"], report["checks"]
        assert "in a user namespace" in report["sandbox"]
        snoop = subprocess.run(
            [*base, python, "client.py", "{host}", "{port}"],
            capture_output=True, text=True, timeout=60, cwd=hw, env=env, check=False,
        )  # fmt: skip
        assert snoop.stderr == "", snoop.stderr
        assert secret.read_text() == "only for the instructor"
        assert "read " + str(secret) not in snoop.stdout
    finally:
        shutil.rmtree(home, ignore_errors=True)
