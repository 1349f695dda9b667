"""Grading a real class (``cs457p2p grade``): Python 2 and 3 side by side with
``{python}``, outcomes that say what happened, re-runs (``--only``, an earlier report
never a student), Ctrl-C, points (``--rubric``), and Gradescope (``check --gradescope``,
``cs457p2p autograder``) with real processes."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from conftest import CLI, CliRunner, with_share

STUDENTS = Path(__file__).parent / "students"
GOOD = STUDENTS / "clients" / "good_client.py"

#: A Python 2 client as a student writes one (a print statement: Python 3 cannot compile
#: it); it calls pickle.loads as the course's code does (only in tests, fed by the
#: checker).
PY2_CLIENT = """\
import pickle, socket, sys
HOST, PORT = sys.argv[1], int(sys.argv[2])
def ask(request):
    s = socket.create_connection((HOST, PORT))
    s.sendall(request)
    data = ""
    while True:
        chunk = s.recv(1024)
        if not chunk:
            break
        data += chunk
    s.close()
    return pickle.loads(data)
n = ask("REGISTER")
words = [None] * n
for i in range(n):
    seq, value = ask(pickle.dumps(i))
    words[seq] = value
print " ".join(words)
"""


def _student(root: Path, name: str, file: str, source: str | Path) -> None:
    (root / name).mkdir(parents=True)
    if isinstance(source, Path):
        shutil.copy(source, root / name / file)
    else:
        (root / name / file).write_text(source)


def _csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def test_a_mixed_class_is_graded_each_with_its_python(
    run_cli: CliRunner, tmp_path: Path, python2: str
) -> None:
    subs = tmp_path / "class"
    _student(subs, "alice", "client.py", GOOD)
    _student(subs, "bob", "client.py", PY2_CLIENT)
    _student(subs, "carol", "client.py", "print 'hello'\nif True\n    pass\n")
    _student(subs, "frank", "hw08_frank.py", GOOD)
    rubric = tmp_path / "rubric.toml"
    rubric.write_text("[points]\nreference-db = 3\nempty-db = 1\n")
    args = [
        "grade", "client", str(subs), "--command", "{python} client.py {host} {port}",
        "--scenario", "reference-db", "--scenario", "empty-db", "--python2", python2,
        "--jobs", "2", "--rubric", str(rubric),
    ]  # fmt: skip
    r = run_cli(*args, timeout=300)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    rows = _csv(subs / "grading-report" / "client" / "grades.csv")
    assert {k: v["outcome"] for k, v in rows.items()} == {
        "alice": "passed",
        "bob": "passed",
        "carol": "cannot-start",
        "frank": "missing",
    }
    assert rows["alice"]["python"].startswith("Python 3")
    assert rows["bob"]["python"] == "Python 2.7 (not Python 3)"
    assert (
        "SyntaxError" in rows["carol"]["detail"] and "client.py, line 2" in rows["carol"]["detail"]
    )
    assert rows["frank"]["detail"] == "no client.py in the folder frank: it holds hw08_frank.py"
    assert (rows["alice"]["score"], rows["alice"]["max_score"]) == ("4.0", "4.0")
    assert rows["carol"]["score"] == "0.0"
    assert "python: Python 2.7 (not Python 3)" in r.stdout  # (the table says which, too)

    # a second run, its report elsewhere: the first run's report is no student; --only
    # regrades one and keeps the others' rows
    again = run_cli(*args[:-2], "--only", "carol", "--report-dir", str(tmp_path / "r2"))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1].startswith("graded 1 student of 4:")
    (subs / "carol" / "client.py").write_text(GOOD.read_text())
    third = run_cli(*args, "--only", "carol", timeout=300)
    assert third.returncode == 0, third.stderr
    rows = _csv(subs / "grading-report" / "client" / "grades.csv")
    assert rows["carol"]["outcome"] == "passed" and rows["bob"]["outcome"] == "passed"
    assert sorted(rows) == ["alice", "bob", "carol", "frank"]


def test_usage_mistakes_are_one_line_before_any_student_runs(
    run_cli: CliRunner, tmp_path: Path
) -> None:
    _student(tmp_path / "class", "alice", "client.py", GOOD)
    r = run_cli(
        "grade",
        "client",
        str(tmp_path / "class"),
        "--command",
        "python3 client.py {hostname} {port}",
    )
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [
        "cs457p2p grade client: error: {hostname} is no placeholder of --command; use {host},"
        " {port}, {transport}, {python}"
    ]
    bad = tmp_path / "bad.toml"
    bad.write_text("[points]\nregister = 3\n")
    r = run_cli(
        "grade", "client", str(tmp_path / "class"), "--command", "python3 client.py {port}",
        "--rubric", str(bad),
    )  # fmt: skip
    assert r.returncode == 2 and "'register' is no check here" in r.stderr
    r = run_cli("check", "client", "--scenario", "empty-db", "python3", "-u", "client.py")
    assert r.returncode == 2
    assert "put the program after --: cs457p2p check client [OPTIONS] -- python3 -u" in r.stderr


def test_ctrl_c_leaves_the_rows_done_and_the_rest_not_graded(tmp_path: Path) -> None:
    subs = tmp_path / "class"
    _student(subs, "alice", "client.py", GOOD)
    _student(subs, "zed", "client.py", "import time\ntime.sleep(600)\n")
    args = [
        "grade", "client", str(subs), "--command", f"{sys.executable} client.py {{host}} {{port}}",
        "--scenario", "reference-db", "--timeout", "120",
    ]  # fmt: skip
    proc = subprocess.Popen(
        [*CLI, *with_share(args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]  # the header, alice's row
        assert lines[1].startswith("alice "), lines
        time.sleep(1.0)  # (zed is running)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "stopped: 1 of 2 students graded, the rest not-graded" in out
    rows = _csv(subs / "grading-report" / "client" / "grades.csv")
    assert rows["alice"]["outcome"] == "passed" and rows["zed"]["outcome"] == "not-graded"


def _valid_gradescope(results: dict[str, Any]) -> None:
    """Gradescope's documented fields: a score, tests with a name, a status, an output,
    a visibility, and (graded ones) a score and a max_score."""
    assert isinstance(results["score"], (int, float))
    assert results["visibility"] in ("visible", "hidden", "after_due_date", "after_published")
    for test in results["tests"]:
        assert isinstance(test["name"], str) and test["status"] in ("passed", "failed")
        assert isinstance(test["output"], str) and test["visibility"] == "visible"
        if "max_score" in test:
            assert 0 <= test["score"] <= test["max_score"]
    graded = [t for t in results["tests"] if "max_score" in t]
    assert results["score"] == sum(t["score"] for t in graded)


def test_check_writes_gradescope_results(run_cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    r = run_cli(
        "check", "client", "--scenario", "reference-db", "--scenario", "empty-db",
        "--gradescope", str(out), "--", sys.executable, str(GOOD), "{host}", "{port}",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    results = json.loads(out.read_text())
    _valid_gradescope(results)
    assert results["score"] == results["max_score"] == 2


def test_the_autograder_zip_grades_a_submission(tmp_path: Path, python2: str) -> None:
    """The zip's setup.sh and run_autograder, run in a scratch root as Gradescope runs
    them in /autograder, grade a Python 2 submission that does not pause: every rule
    passes but the pause, and results.json says so."""
    zip_path = tmp_path / "autograder.zip"
    r = subprocess.run(
        [*CLI, "autograder", "client", "--assignment", "hw08", "-o", str(zip_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    root = tmp_path / "autograder"
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(root / "source")
        modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
    assert modes["setup.sh"] & 0o111 and modes["run_autograder"] & 0o111
    for name in ("setup.sh", "run_autograder"):
        os.chmod(root / "source" / name, 0o755)
    (root / "submission").mkdir()
    (root / "submission" / "client.py").write_text(PY2_CLIENT)
    env = {
        "PATH": f"{Path(python2).parent}:{Path(sys.executable).parent}:/usr/bin:/bin",
        "AUTOGRADER_ROOT": str(root),
        "AUTOGRADER_NO_APT": "1",
        "HOME": str(tmp_path),
    }
    setup = subprocess.run(
        ["bash", str(root / "source" / "setup.sh")],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert setup.returncode == 0, setup.stdout + setup.stderr
    run = subprocess.run(
        ["bash", str(root / "source" / "run_autograder")],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    _valid_gradescope(results)
    failed = [t["name"] for t in results["tests"] if t["status"] == "failed" and "max_score" in t]
    assert failed == ["pause"], (root / "results" / "report.json").read_text()[-3000:]
    assert results["score"] == 85 and results["max_score"] == 100
