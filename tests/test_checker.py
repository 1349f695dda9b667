"""``cs457p2p check tracker`` and ``cs457p2p check client``: against our own tracker and
client, against reference-style stand-ins written from docs/PROTOCOL.md, and against broken ones,
each of which must fail with the check that names its fault.

``check tracker`` runs for real here only where the recording side meets something of its
own: our tracker, the reference-style stand-in, nothing listening, a tracker that hangs,
a memo bomb, the deadline, a large database, what it sends; each tracker mistake's words
are a unit test of the judge (tests/test_tracker_judge.py)."""

from __future__ import annotations

import io
import json
import pickletools
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import CliRunner, TrackerFactory
from cs457p2p.checker import tracker_checks
from cs457p2p.checker.client_checks import secret_words
from cs457p2p.checker.report import NOT_GRADED, CheckResult, Report
from cs457p2p.checker.runner import substitute
from cs457p2p.core.course_model import p1_answer
from cs457p2p.core.database import Database
from cs457p2p.core.decoder import decode
from cs457p2p.core.py2 import protocol0_count, protocol0_item
from standins import (
    BAD_REQUEST_P0,
    REFERENCE_MESSAGE,
    REGISTER,
    LyingTracker,
    ReferenceTracker,
    dumps_p0,
    error_line,
    first_pickle_end,
    free_port,
    wait_for,
)

OUR_CLIENT = [sys.executable, "-m", "cs457p2p", "client", "--tracker", "{host}:{port}", "--quiet"]
TRACKER_REQUIRED = [
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
TRACKER_INFO = ["ascii-positions", "pipelining", "udp", "latency"]
TCP_SCENARIOS = [
    "reference-db",
    "empty-db",
    "large-db",
    "course-tracker",
    "chunked-answers",
    "delayed-answers",
]
UDP_SCENARIOS = [
    "reference-db",
    "empty-db",
    "large-db",
    "delayed-answers",
    "udp-loss",
    "udp-duplicate",
    "udp-reorder",
]

#: A student-style client, written from docs/PROTOCOL.md: REGISTER, then one connection per
#: position, each answer read until EOF, VALUE placed at index SEQNUM. It encodes with
#: pickle.dumps and decodes with the restricted decoder. Its third argument breaks it.
STUDENT_CLIENT = """\
import pickle
import socket
import sys
import time

from cs457p2p.core.decoder import decode

host, port = sys.argv[1], int(sys.argv[2])
mode = sys.argv[3] if len(sys.argv) > 3 else "good"

if mode in ("leak-setsid", "hold-stdout"):
    import subprocess
    # a grandchild in a session of its own (out of the client's process group), or one
    # that keeps the client's stdout open: both must die with the client's run
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)"],
        start_new_session=mode == "leak-setsid",
        stdout=None if mode == "hold-stdout" else subprocess.DEVNULL,
    )
    with open(sys.argv[4], "a") as f:
        f.write(f"{child.pid}\\n")


def ask(request):
    s = socket.create_connection((host, port), timeout=10)
    try:
        s.sendall(request)
        if mode == "single-recv":
            return s.recv(1024)  # the bug: one recv is taken to hold the whole answer
        chunks = []
        while True:
            data = s.recv(4096)
            if not data:
                return b"".join(chunks)
            chunks.append(data)
    finally:
        s.close()


n = decode(ask(b"REGISTER"))
if mode == "hang":
    import subprocess
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # holds stdout
    time.sleep(60)
db = [None] * n
for i in range(n):
    seq, value = decode(ask(pickle.dumps(i, protocol=2)))
    db[i if mode == "by-position" else seq] = value  # by-position: the bug
print(" ".join(db))
"""


def run_json(run_cli: CliRunner, *args: str, timeout: float = 40) -> tuple[int, dict[str, Any]]:
    """Run ``cs457p2p check ... --json``; return the exit code and the report."""
    r = run_cli("check", *args, timeout=timeout)
    assert r.stderr == "", r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] == (r.returncode == 0)
    assert r.returncode in (0, 1)
    return r.returncode, report


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def failed(report: dict[str, Any]) -> list[str]:
    return [c["name"] for c in report["checks"] if c["required"] and not c["passed"]]


@pytest.fixture
def student_client(tmp_path: Path) -> list[str]:
    script = tmp_path / "student_client.py"
    script.write_text(STUDENT_CLIENT)
    return [sys.executable, str(script), "{host}", "{port}"]


# ------------------------------------------------------------------- check tracker


def test_our_tracker_passes_every_check(start_tracker: TrackerFactory, run_cli: CliRunner) -> None:
    t = start_tracker()
    code, report = run_json(run_cli, "tracker", t.address, "--json")
    assert code == 0, report["summary"]
    checks = by_name(report)
    assert [c["name"] for c in report["checks"]] == TRACKER_REQUIRED + TRACKER_INFO
    assert all(checks[name]["required"] for name in TRACKER_REQUIRED)
    assert not any(checks[name]["required"] for name in TRACKER_INFO)
    assert report["message"] == REFERENCE_MESSAGE
    assert checks["register"]["data"] == {"n": 16}
    # what our tracker offers beyond the reference
    for name in TRACKER_INFO:
        assert checks[name]["passed"], checks[name]
        assert checks[name]["result"] == "INFO"
    assert checks["pickle-protocol"]["data"]["protocols"] == [2]
    assert checks["latency"]["data"]["samples"] == tracker_checks.LATENCY_SAMPLES
    assert report["summary"] == {
        "required": 10,
        "passed": 10,
        "failed": [],
        "not_run": [],
        "line": f"tracker {t.address}: 10/10 required checks passed",
    }
    assert all(c["hint"] == "" and c["warning"] == "" for c in report["checks"])
    assert t.alive()


def test_our_tracker_passes_over_udp(start_tracker: TrackerFactory, run_cli: CliRunner) -> None:
    t = start_tracker("--message", "one two three four five")
    code, report = run_json(run_cli, "tracker", t.address, "--transport", "udp", "--json")
    assert code == 0, report["summary"]
    assert report["transport"] == "udp"
    assert report["message"] == "one two three four five"
    checks = by_name(report)
    assert "tcp" in checks and "udp" not in checks
    assert checks["tcp"]["passed"] and checks["pipelining"]["passed"]


def test_large_database_is_checked_in_time(
    start_tracker: TrackerFactory, run_cli: CliRunner, tmp_path: Path
) -> None:
    words = [f"w{i}" for i in range(800)]
    db = tmp_path / "big.txt"
    db.write_text(" ".join(words))
    t = start_tracker("--db", str(db))
    start = time.monotonic()
    code, report = run_json(run_cli, "tracker", t.address, "--json")
    assert code == 0, report["summary"]
    assert report["message"] == " ".join(words)
    concurrent = by_name(report)["concurrent"]
    assert concurrent["data"]["positions"] == tracker_checks.CONCURRENT_SAMPLE
    assert "a sample of the 800" in concurrent["detail"]
    assert time.monotonic() - start < 45


def test_reference_style_standin_passes_the_required_checks(run_cli: CliRunner) -> None:
    with ReferenceTracker() as t:
        code, report = run_json(run_cli, "tracker", t.address, "--json")
    assert code == 0, report["summary"]
    assert report["message"] == REFERENCE_MESSAGE
    checks = by_name(report)
    # ... and is reported as the reference it is
    assert not checks["ascii-positions"]["passed"]
    assert "'Bad request'" in checks["ascii-positions"]["detail"]
    assert not checks["pipelining"]["passed"]
    assert checks["pipelining"]["detail"].startswith("no, one request at a time (as the reference)")
    assert not checks["udp"]["passed"]
    assert checks["pickle-protocol"]["data"]["protocols"] == [0]
    assert "as the reference" in checks["pickle-protocol"]["detail"]
    assert checks["pickle-protocol"]["passed"]


def test_the_checker_sends_nothing_that_could_run_code(run_cli: CliRunner) -> None:
    with ReferenceTracker() as t:
        code, _ = run_json(run_cli, "tracker", t.address, "--json")
        requests = list(t.requests)
    assert code == 0
    assert len(requests) > 100
    for request in set(requests):
        if request == REGISTER or request == b"0" or request == b"":
            continue
        if request[:1] == b"\xff":  # no pickle opcode: a stock unpickler stops at once
            continue
        rest = request  # one position, or two back to back (the pipelining check)
        while rest:
            end = first_pickle_end(rest)
            assert end is not None, request
            piece, rest = rest[:end], rest[end:]
            assert isinstance(decode(piece), int), request  # a position, nothing else
            ops = {op.name for op, _, _ in pickletools.genops(io.BytesIO(piece))}
            assert ops <= {"PROTO", "BININT1", "BININT2", "BININT", "STOP"}, (request, ops)


def test_no_module_of_the_package_unpickles_with_the_stock_unpickler() -> None:
    """Only the restricted decoder reads network bytes: nothing in the package imports
    pickle (the checker, the tracker and the clients included)."""
    package = Path(tracker_checks.__file__).parent.parent
    sources = sorted(package.rglob("*.py"))
    assert len(sources) > 30
    for path in sources:
        source = path.read_text()
        assert not re.search(r"^\s*(import pickle|from pickle |import _pickle)", source, re.M), path
        assert not re.search(r"pickle\.loads?\(|Unpickler\(", source), path


def test_a_hanging_tracker_fails_in_bounded_time(run_cli: CliRunner) -> None:
    with LyingTracker("hang_item") as t:
        start = time.monotonic()
        code, report = run_json(run_cli, "tracker", t.address, "--timeout", "1", "--json")
        elapsed = time.monotonic() - start
    assert code == 1
    assert failed(report)[0] == "items"
    assert by_name(report)["items"]["detail"] == "position 3: no answer within 1 s"
    assert elapsed < 15


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_nothing_listening_is_one_line(run_cli: CliRunner, transport: str) -> None:
    port = free_port()
    code, report = run_json(
        run_cli, "tracker", f"127.0.0.1:{port}", "--transport", transport,
        "--timeout", "2", "--json",
    )  # fmt: skip
    assert code == 1
    checks = by_name(report)
    assert re.fullmatch(
        rf"nothing listens on 127\.0\.0\.1:{port} \(.*(refused|unreachable).*\): is the tracker"
        r" running\?",
        checks["register"]["detail"],
    ), checks["register"]["detail"]
    assert report["stopped"] == checks["register"]["detail"]
    assert failed(report) == TRACKER_REQUIRED
    for name in TRACKER_REQUIRED[1:]:
        assert checks[name]["detail"] == "not run: nothing listens"
    # the nine checks that could not run are counted apart from the one failure
    assert report["summary"]["failed"] == ["register"]
    assert report["summary"]["not_run"] == TRACKER_REQUIRED[1:]
    rest = ", ".join(TRACKER_REQUIRED[1:])
    assert report["summary"]["line"].endswith(
        f"0/10 required checks passed (failed: register; 9 not run: {rest})"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["tracker"],
        ["tracker", "127.0.0.1:notaport"],
        ["tracker", "127.0.0.1:0"],
        ["tracker", "127.0.0.1:7777", "--transport", "sctp"],
        [],
    ],
)
def test_tracker_usage_errors(run_cli: CliRunner, args: list[str]) -> None:
    r = run_cli("check", *args)
    assert r.returncode == 2 and r.stdout == ""
    assert "error" in error_line(r.stderr)


# -------------------------------------------------------------------- check client


def test_our_client_passes_every_scenario(run_cli: CliRunner) -> None:
    code, report = run_json(run_cli, "client", "--json", "--", *OUR_CLIENT)
    assert code == 0, report["summary"]
    assert [c["name"] for c in report["checks"]] == TCP_SCENARIOS
    assert all(c["required"] and c["result"] == "PASS" for c in report["checks"])
    checks = by_name(report)
    assert checks["large-db"]["data"]["items"] == 5000
    assert "fault_seed" in checks["chunked-answers"]["data"]
    assert report["summary"]["line"].endswith(": 6/6 required checks passed")


def test_our_client_passes_over_udp(run_cli: CliRunner) -> None:
    command = [*OUR_CLIENT, "--transport", "{transport}"]
    code, report = run_json(run_cli, "client", "--transport", "udp", "--json", "--", *command)
    assert code == 0, report["summary"]
    assert [c["name"] for c in report["checks"]] == UDP_SCENARIOS


def test_reference_style_student_client_passes(
    run_cli: CliRunner, student_client: list[str]
) -> None:
    code, report = run_json(run_cli, "client", "--json", "--", *student_client)
    assert code == 0, report["summary"]
    assert [c["name"] for c in report["checks"]] == TCP_SCENARIOS


def test_a_client_that_orders_by_position_fails(
    run_cli: CliRunner, student_client: list[str]
) -> None:
    code, report = run_json(
        run_cli,
        "client", "--json", "--scenario", "reference-db", "--scenario", "empty-db",
        "--scenario", "course-tracker", "--", *student_client, "by-position",
    )  # fmt: skip
    assert code == 1
    assert failed(report) == ["reference-db", "course-tracker"]
    for name in failed(report):
        assert "position order, not in SEQNUM order" in by_name(report)[name]["detail"]


def test_a_client_that_reads_one_recv_fails_chunked_answers(
    run_cli: CliRunner, student_client: list[str]
) -> None:
    scenarios = [s for s in TCP_SCENARIOS if s != "large-db"]  # (it passes that one too)
    options = [f"--scenario={s}" for s in scenarios]
    code, report = run_json(
        run_cli, "client", "--json", *options, "--", *student_client, "single-recv"
    )
    assert code == 1
    assert [c["name"] for c in report["checks"]] == scenarios
    assert failed(report) == ["chunked-answers"]
    detail = by_name(report)["chunked-answers"]["detail"]
    assert detail.startswith("exit 1; nothing on stdout; stderr: ")


def test_a_hanging_client_is_killed_and_fails(
    run_cli: CliRunner, student_client: list[str]
) -> None:
    start = time.monotonic()
    code, report = run_json(
        run_cli,
        "client", "--json", "--timeout", "1", "--scenario", "reference-db",
        "--scenario", "empty-db", "--", *student_client, "hang",
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert code == 1
    assert failed(report) == ["reference-db", "empty-db"]
    for check in report["checks"]:
        assert check["detail"].startswith(
            "did not exit within 1 s (killed) after 1 connection and 1 request"
        ), check["detail"]
        assert check["data"]["timed_out"]
    assert elapsed < 30  # the child holding stdout (for 60 s) was killed with it


def test_a_memorised_message_does_not_pass(run_cli: CliRunner) -> None:
    """Printed without asking (each scenario has a fresh message), whether or not it
    connects first."""
    memorised = f"print({REFERENCE_MESSAGE!r})"
    connects = (
        f"import socket, sys; socket.create_connection(('{{host}}', {{port}})).close(); {memorised}"
    )
    for source, says in (
        (f"{memorised}  # {{host}}:{{port}}", "the client never connected to 127.0.0.1:"),
        (connects, "exit 0; stdout does not hold the message (it starts 'Now is the time"),
    ):
        code, report = run_json(
            run_cli, "client", "--json", "--scenario", "reference-db", "--",
            sys.executable, "-c", source,
        )  # fmt: skip
        assert code == 1
        assert by_name(report)["reference-db"]["detail"].startswith(says), report


def test_a_message_on_stderr_is_named(run_cli: CliRunner, tmp_path: Path) -> None:
    script = tmp_path / "to_stderr.py"
    script.write_text(
        "import subprocess, sys\n"
        "r = subprocess.run([sys.executable, '-m', 'cs457p2p', 'client', '--quiet',"
        " '--tracker', sys.argv[1]], capture_output=True, text=True)\n"
        "sys.stderr.write(r.stdout)\n"
    )
    code, report = run_json(
        run_cli, "client", "--json", "--scenario", "reference-db", "--",
        sys.executable, str(script), "{host}:{port}",
    )  # fmt: skip
    assert code == 1
    detail = by_name(report)["reference-db"]["detail"]
    assert detail == "exit 0; printed the message on stderr, not on stdout"


def test_client_table_output(run_cli: CliRunner) -> None:
    r = run_cli("check", "client", "--scenario", "reference-db", "--", *OUR_CLIENT)
    assert r.returncode == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    assert re.fullmatch(r"check +result +detail", lines[0])
    assert re.fullmatch(r"reference-db +PASS +printed the message \(16 items\) in .* s", lines[1])
    assert lines[2].startswith(("sandbox: ", "no sandbox: "))
    assert lines[3].startswith("client ") and lines[3].endswith(": 1/1 required checks passed")
    assert " --tracker {host}:{port} --quiet: " in lines[3]  # as given, not quoted


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["client"], "missing COMMAND"),
        (["client", "--json", "--"], "missing COMMAND"),
        (["client", "--", sys.executable, "client.py"], "{port}"),
        (["client", "--", "/nonexistent/client", "{port}"], "cannot run"),
        (["client", "--scenario", "nope", "--", "x", "{port}"], "invalid choice"),
        (["client", "--transport", "udp", "--scenario", "chunked-answers", "--", "x", "{port}"],
         "no scenario 'chunked-answers' over udp"),
        (["client", "--timeout", "0", "--", "x", "{port}"], "positive"),
    ],
)  # fmt: skip
def test_client_usage_errors(run_cli: CliRunner, args: list[str], says: str) -> None:
    r = run_cli("check", *args)
    assert r.returncode == 2 and r.stdout == ""
    assert says in error_line(r.stderr)


def test_dashes_after_the_command_are_the_commands_own(run_cli: CliRunner) -> None:
    r = run_cli("tracker", "--", "x")
    assert r.returncode == 2
    assert "unrecognized arguments after --" in error_line(r.stderr)
    command = [*OUR_CLIENT, "--timeout", "5"]
    code, _ = run_json(run_cli, "client", "--scenario", "empty-db", "--json", "--", *command)
    assert code == 0


# ---------------------------------------------------------------------- the pieces


def test_substitute() -> None:
    values = {"host": "h", "port": 5, "transport": "udp"}
    assert substitute(["c", "--t", "{host}:{port}", "{transport}", "{x}"], values) == [
        "c",
        "--t",
        "h:5",
        "udp",
        "{x}",
    ]


def test_secret_words_are_fresh() -> None:
    import random

    a, b = secret_words(random.Random(), 16), secret_words(random.Random(), 16)
    assert a != b
    assert all(w.isascii() and w.isalpha() and w.islower() for w in a + b)
    assert secret_words(random.Random(1), 16) == secret_words(random.Random(1), 16)


def test_the_course_tracker_speaks_protocol_0() -> None:
    assert protocol0_count(16) == b"I16\n."
    assert protocol0_item(12, "of") == b"(I12\nS'of'\np0\ntp1\n."
    assert protocol0_item(1, "it's") == dumps_p0((1, "it's"))
    assert protocol0_item(2, "a\\b\n\u00e9") == dumps_p0((2, "a\\b\n\u00e9"))
    assert decode(protocol0_item(2, "a\\b\n\u00e9")) == (2, "a\\b\n\u00e9")
    db = Database.from_pairs([(1, "b"), (0, "a")], "test", shuffle_seed=None)
    assert p1_answer(REGISTER, db.items).reply == b"I2\n."
    assert p1_answer(b"\x80\x02K\x00.", db.items).reply == dumps_p0(db.items[0])
    trailing = p1_answer(b"I1\n.trailing", db.items)  # as pickle.loads reads it
    assert trailing.reply == dumps_p0(db.items[1])
    for bad in (b"0", b"\x80\x02K\x02.", b"I-3\n.", b"REGISTER\n", b"", b"cos\nsystem\n."):
        assert p1_answer(bad, db.items).reply == BAD_REQUEST_P0


def test_report_shape() -> None:
    report = Report(
        "tracker",
        "h:1",
        "tcp",
        (
            CheckResult("a", True, True, "fine"),
            CheckResult("b", True, False, "broken\nbadly"),
            CheckResult("c", False, False, "absent"),
        ),
    )
    assert not report.ok and report.exit_code == 1
    assert report.failed == ["b"]
    assert report.table().splitlines() == [
        "check  result  detail",
        "a      PASS    fine",
        "b      FAIL    broken badly",
        "c      INFO    absent",
        NOT_GRADED,
        "tracker h:1: 1/2 required checks passed (failed: b)",
    ]
    data = json.loads(report.json_text())
    assert data["summary"]["required"] == 2 and data["checks"][2]["result"] == "INFO"
    big = CheckResult("message", True, True, "x" * 10_000_000, {"message": "x" * 10_000_000})
    whole = Report("tracker", "h:1", "tcp", (big,), message="x" * 10_000_000)
    assert len(repr(whole)) < 200 and len(repr(big)) < 200  # (asyncio builds it in full)


def test_checks_that_could_not_run_are_counted_apart_from_failures() -> None:
    """A cascade row ("not run: ...") is not a failure of its own: the summary counts it
    apart; it still keeps the report from passing."""
    report = Report(
        "tracker",
        "h:1",
        "tcp",
        (
            CheckResult("register", True, False, "REGISTER: no answer within 5 s"),
            CheckResult("items", True, False, "not run: REGISTER gave no N"),
            CheckResult("pickled", True, False, "not run: no answer to look at"),
            CheckResult("garbage", True, False, "closed without answering"),
            CheckResult("pipelining", False, False, "not run: REGISTER gave no N"),
        ),
    )
    assert (report.failed, report.not_run) == (["register", "garbage"], ["items", "pickled"])
    assert report.summary() == (
        "tracker h:1: 0/4 required checks passed (failed: register, garbage; 2 not run:"
        " items, pickled)"
    )
    summary = report.to_json()["summary"]
    assert (summary["failed"], summary["not_run"]) == (
        ["register", "garbage"],
        ["items", "pickled"],
    )
    late = Report(
        "tracker",
        "h:1",
        "tcp",
        (
            CheckResult("register", True, True, "N = 16"),
            CheckResult("concurrent", True, False, "not run: the overall deadline of 1 s passed"),
        ),
    )
    assert late.failed == [] and not late.ok and late.exit_code == 1
    assert late.summary() == "tracker h:1: 1/2 required checks passed (1 not run: concurrent)"


def test_check_tracker_api_in_a_thread() -> None:
    """The public API runs its own event loop; a tracker in this process answers."""
    results: list[Report] = []
    with ReferenceTracker() as t:
        th = threading.Thread(
            target=lambda: results.append(tracker_checks.check_tracker("127.0.0.1", t.port)),
            daemon=True,
        )
        th.start()
        th.join(30)
    assert results and results[0].ok, results[0].table() if results else "no report"


@pytest.mark.parametrize("mode", ["leak-setsid", "hold-stdout"])
def test_a_clients_whole_process_tree_ends_with_its_run(
    run_cli: CliRunner, student_client: list[str], tmp_path: Path, mode: str
) -> None:
    """Without a sandbox (``--no-sandbox``: the fallback where none can be made), a
    grandchild in a session of its own once outlived the checker (and the scenario
    passed); one that kept the client's stdout open turned a 0.1 s client into "did not
    exit within 5 s". (In a sandbox its pid namespace ends with it: tests/test_sandbox.py.)"""
    pids = tmp_path / "pids"
    start = time.monotonic()
    code, report = run_json(
        run_cli,
        "client", "--json", "--timeout", "20", "--scenario", "reference-db", "--no-sandbox",
        "--", *student_client, mode, str(pids),
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert code == 0, report["checks"]
    assert elapsed < 15  # not held by the child for its 300 s, nor by the 20 s timeout
    (pid,) = [int(line) for line in pids.read_text().split()]
    assert wait_for(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), 10), (
        f"process {pid} of the client's tree outlived the check"
    )


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_check_tracker_stops_at_its_overall_deadline(
    start_tracker: TrackerFactory, run_cli: CliRunner
) -> None:
    """A tracker that answers every request, slowly: each answer within --timeout, the
    whole run (hundreds of requests) far longer. The report says what was not checked."""
    t = start_tracker("--delay", "300")
    start = time.monotonic()
    code, report = run_json(
        run_cli, "tracker", t.address, "--json", "--timeout", "2", "--deadline", "3"
    )
    elapsed = time.monotonic() - start
    assert code == 1
    assert elapsed < 20  # the deadline, and the checks under way when it passed
    details = [c["detail"] for c in report["checks"]]
    assert any("overall deadline of 3 s passed" in d for d in details), details


#: Runs the checks in a process of its own under tracemalloc: the peak of the Python
#: objects the checker holds (not the resident size, which moves with the allocator and
#: with the machine's load), the report's table, and its exit code.
_TRACED_CHECK = """
import asyncio, json, sys, tracemalloc
from cs457p2p.checker.tracker_checks import run_tracker_checks
tracemalloc.start()
report = asyncio.run(run_tracker_checks("127.0.0.1", int(sys.argv[1])))
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"peak": peak, "ok": report.ok, "failed": report.failed}))
"""


def test_check_tracker_keeps_one_copy_of_the_database(
    start_tracker: TrackerFactory, tmp_path: Path
) -> None:
    """64 items of 100 kB (6.4 MB): its concurrent check once held 20 copies (128 MB;
    5.7 GB for a database of 1 MiB answers); now it compares as the answers come, and
    keeps the items, the message and the message's row. (asyncio also once built the
    repr of the whole report, six copies more, on its way out of asyncio.run.)"""
    db = tmp_path / "big.txt"
    db.write_text(" ".join(f"{k:03d}" + "v" * 100_000 for k in range(64)))
    t = start_tracker("--db", str(db))
    r = subprocess.run(
        [sys.executable, "-c", _TRACED_CHECK, str(t.port)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["ok"], result["failed"]
    size = 64 * 100_003
    assert result["peak"] < 6 * size, (
        f"the checker's peak was {result['peak'] / size:.1f}x the database"
    )


def test_check_tracker_survives_a_memo_bomb(run_cli: CliRunner) -> None:
    with LyingTracker("memo_bomb_item") as t:
        code, report = run_json(run_cli, "tracker", t.address, "--json")
    assert code == 1
    assert "memo references" in by_name(report)["items"]["detail"]
