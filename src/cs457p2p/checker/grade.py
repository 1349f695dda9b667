"""``grade``: a folder of submissions (one subfolder per student) graded in one run.

Each student's program runs in the student's own folder, contained by :mod:`.runner`
(bounded in time and memory, its whole process tree killed at the end, its output kept
in a log file under the report's folder). A client is run in the scenarios of
``check client``; a tracker is started on a port of its own, looked for among the
listening ports until it listens (never probed by a connection, which would be its
first client), checked as ``check tracker`` does (``--part 2``: the ring, as
``check tracker --part 2``), then stopped with its whole tree. A Part 2 peer is run as
``check peer`` runs it.

What happened to each student is one of :data:`OUTCOMES`, so that a missing file, a
command that cannot start and a crash are told apart from failed checks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.wire2 import Echo, encode_message
from ..net import free_port, listening_ports
from ..waits import wait_for
from .assignments import run_hw08
from .client_checks import run_client_checks
from .interpreters import PLACEHOLDER, Interpreters, choose
from .judges.hw08 import HW08_REQUIRED
from .peer_checks import HW09_REQUIRED, run_peer_checks
from .peer_checks import REQUIRED as PEER_REQUIRED
from .report import Report, one_line, short_text
from .ring_tracker_checks import P2_INFO, run_ring_tracker_checks
from .ring_tracker_checks import REQUIRED as RING_REQUIRED
from .rubric import Rubric, default_rubric
from .runner import CommandError, Program, substitute
from .sandbox import Jail, SandboxPolicy, contained
from .scenarios import CLIENT_SCENARIOS, scenarios_for
from .tracker_checks import REQUIRED as TRACKER_REQUIRED
from .tracker_checks import run_tracker_checks

__all__ = [
    "OUTCOMES",
    "REPORT_FOLDER",
    "Grade",
    "GradeError",
    "GradeOptions",
    "all_checks",
    "grade_all",
    "log_of",
    "named_files",
    "required_checks",
    "students_in",
]

#: What can happen to a student, from best to worst
OUTCOMES = {
    "passed": "every required check passed",
    "failed": "the program ran, and some required checks failed",
    "hung": "the program was killed at the timeout (and did not crash)",
    "crashed": "the program exited with an error (a client in some scenario; a tracker"
    " before or while it was checked)",
    "not-listening": "the tracker ran but never listened on its port",
    "over-limit": "the program hit a limit of its sandbox (memory, processes, CPU time,"
    " disk, open files)",
    "cannot-start": "the command could not be started (not found, not executable)",
    "missing": "a file the command names is not in the student's folder",
    "not-graded": "the grading was stopped before this student",
}
#: The reports' folder, inside SUBMISSIONS unless told otherwise (never graded): one
#: subfolder for clients, one for trackers.
REPORT_FOLDER = "grading-report"
#: Seconds a tracker may take to listen on its port.
STARTUP = 10.0
_LOOK_EVERY = 0.05
#: Seconds a tracker that failed a check is given to finish dying, if it is (an
#: interpreter closes its sockets before it has exited).
EXIT_WAIT = 2.0
#: An argument that names a file of the submission: ``client.py``, ``./run.sh``
_FILE_ARG = re.compile(r"(\./.+|[^/{}\-][^{}]*\.[A-Za-z0-9]{1,5})")


class GradeError(Exception):
    """The grading cannot run at all (no such folder, no students): a usage error."""


@dataclass(frozen=True)
class GradeOptions:
    kind: str  # "client" or "tracker"
    command: tuple[str, ...]
    report_dir: Path
    timeout: float  # client: a scenario's run; tracker: the wait for one answer
    jobs: int = 1
    transport: str = "tcp"
    deadline: float = 300.0  # tracker: the longest run of the checks of one student
    startup: float = STARTUP  # tracker: the longest wait for it to listen
    scenarios: tuple[str, ...] | None = None  # client: only these (default: all)
    part: int = 1  # tracker: 1 or 2 (the ring); a peer is Part 2
    wait: float = 30.0  # tracker, Part 2: the wait for a PING and a prune
    stdin: str | None = None  # peer: what its stdin gets (placeholders replaced)
    tracker_port: int | None = None  # peer: the played tracker's fixed port
    sandbox: SandboxPolicy = field(default_factory=SandboxPolicy)
    #: the course's assignment judged (``hw08``, ``hw09``, ``p2``), or "" for our checks
    assignment: str = ""
    #: where ``{python}`` is in the command: the Python 2.7 and 3 to choose from
    interpreters: Interpreters | None = None
    #: the points per check (None: one per required check)
    rubric: Rubric | None = None


@dataclass
class Grade:
    """One student's result."""

    student: str
    outcome: str
    passed: int
    required: int
    failed: list[str]
    hint: str
    detail: str
    log: Path
    report: Report | None = field(default=None, repr=False)
    #: what the checks warned of (they do not fail a check)
    warnings: list[str] = field(default_factory=list)
    #: how the student's programs were contained (one line)
    sandbox: str = ""
    #: which Python ran them, and why (``{python}`` in the command), or ""
    python: str = ""
    #: the rubric's points for the checks passed, out of ``max_score``
    score: float = 0.0
    max_score: float = 0.0

    def row(self) -> dict[str, Any]:
        return {
            "student": self.student,
            "outcome": self.outcome,
            "passed": self.passed,
            "required": self.required,
            "failed": " ".join(self.failed),
            "hint": self.hint,
            "detail": self.detail,
            "warnings": " | ".join(self.warnings),
            "log": str(self.log),
            "sandbox": self.sandbox,
            "python": self.python,
            "score": self.score,
            "max_score": self.max_score,
        }

    def to_json(self) -> dict[str, Any]:
        out = self.row()
        out["failed"] = self.failed
        out["warnings"] = self.warnings
        out["report"] = None if self.report is None else self.report.to_json()
        return out


def _holds_a_report(folder: Path) -> bool:
    """Whether ``folder`` is, or holds just below it, a report's folder."""
    marker = ".cs457p2p-report"
    if folder.name == REPORT_FOLDER or (folder / marker).exists():
        return True
    try:
        return any((sub / marker).exists() for sub in folder.iterdir() if sub.is_dir())
    except OSError:
        return False


def students_in(submissions: Path, report_dir: Path) -> list[Path]:
    """The students' folders: every subfolder but hidden ones and those that hold a
    report (this run's, or an earlier run's wherever it was written)."""
    if not submissions.is_dir():
        raise GradeError(f"{submissions}: not a folder")
    report = report_dir.resolve()
    folders = sorted(
        p
        for p in submissions.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and p.resolve() != report
        and p.resolve() not in report.parents
        and not _holds_a_report(p)
    )
    if not folders:
        raise GradeError(f"{submissions}: no student folders in it (one subfolder per student)")
    return folders


def named_files(command: Sequence[str]) -> list[str]:
    """The files of a submission that ``command`` names: arguments like ``client.py`` or
    ``./client`` (the program itself only when written ``./NAME``)."""
    return [
        arg
        for k, arg in enumerate(command)
        if _FILE_ARG.fullmatch(arg) and (k > 0 or arg.startswith("./"))
    ]


#: The INFO checks of a tracker's report (Part 1, Part 2): a rubric may give them points.
TRACKER_INFO = ("ascii-positions", "pipelining", "udp", "tcp", "latency", "checker-load")
RING_INFO = ("update-nbr-per-join", "ping-interval", "checker-load")


def required_checks(
    kind: str, part: int, assignment: str, transport: str, scenarios: Sequence[str] | None
) -> list[str]:
    """The names of the required checks of one student's report."""
    if assignment == "hw08":
        return list(HW08_REQUIRED)
    if assignment == "hw09":
        return list(HW09_REQUIRED)
    if kind == "peer":
        return list(PEER_REQUIRED)
    if kind == "tracker" and part == 2:
        return [n for n in RING_REQUIRED if not (assignment == "p2" and n in P2_INFO)]
    if kind == "tracker":
        return list(TRACKER_REQUIRED)
    return [s.name for s in scenarios_for(transport, scenarios)]


def all_checks(kind: str, part: int, assignment: str) -> list[str]:
    """Every check name one student's report may hold (INFO ones too): what a rubric
    may give points to."""
    names = required_checks(kind, part, assignment, "tcp", None)
    if kind == "client":
        names += [s.name for s in CLIENT_SCENARIOS if s.name not in names]
        names += ["checker-load"]
    elif kind == "peer":
        names += [n for n in (*PEER_REQUIRED, *HW09_REQUIRED, "checker-load") if n not in names]
    elif part == 2:
        names += [n for n in (*RING_REQUIRED, *RING_INFO) if n not in names]
    else:
        names += [n for n in TRACKER_INFO if n not in names]
    return names


def required_checks_of(opts: GradeOptions) -> list[str]:
    return required_checks(opts.kind, opts.part, opts.assignment, opts.transport, opts.scenarios)


def _required_count(opts: GradeOptions) -> int:
    if opts.assignment == "hw08":
        return len(HW08_REQUIRED)
    if opts.assignment == "hw09":
        return len(HW09_REQUIRED)
    if opts.assignment == "p2":
        return len(RING_REQUIRED) - len(P2_INFO)
    if opts.kind == "peer":
        return len(PEER_REQUIRED)
    if opts.kind == "tracker":
        return len(RING_REQUIRED if opts.part == 2 else TRACKER_REQUIRED)
    return len(scenarios_for(opts.transport, opts.scenarios))


def _from_report(student: str, report: Report, log: Path, outcome: str) -> Grade:
    required = report.required
    failing = [c for c in required if not c.passed]
    first = failing[0] if failing else None
    return Grade(
        student,
        outcome,
        sum(c.passed for c in required),
        len(required),
        [c.name for c in failing],
        first.hint if first else "",
        one_line(first.detail) if first else "",
        log,
        report,
        [f"{c.name}: {c.warning}" for c in report.checks if c.warning],
        report.sandbox,
    )


def _nothing(student: str, opts: GradeOptions, outcome: str, detail: str, hint: str) -> Grade:
    log = log_of(opts, student)
    count = _required_count(opts)
    return Grade(student, outcome, 0, count, [], hint, detail, log)


def _cannot_start(student: str, opts: GradeOptions, error: CommandError) -> Grade:
    """A program whose command could not be started: not found, not executable..."""
    return _nothing(
        student, opts, "cannot-start", str(error), "check the command and the file's permissions"
    )


def log_of(opts: GradeOptions, student: str) -> Path:
    return opts.report_dir / "logs" / f"{student}.log"


def _missing(folder: Path, command: Sequence[str]) -> str | None:
    for name in named_files(command):
        if not (folder / name).exists():
            return name
    return None


def _what_it_holds(folder: Path, missing: str) -> str:
    """What a folder without ``missing`` holds instead, in a few words."""
    suffix = Path(missing).suffix
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    alike = [n for n in names if suffix and n.endswith(suffix)] or names
    if not alike:
        return "the folder is empty"
    shown = ", ".join(alike[:5]) + (f" and {len(alike) - 5} more" if len(alike) > 5 else "")
    return f"it holds {shown}"


async def _grade_client(folder: Path, opts: GradeOptions, slot: int) -> Grade:
    student, log = folder.name, log_of(opts, folder.name)
    try:
        if opts.assignment == "hw08":
            report = await run_hw08(
                opts.command,
                timeout=opts.timeout,
                cwd=folder,
                log=log,
                sandbox=opts.sandbox,
                slot=slot,
            )
        else:
            report = await run_client_checks(
                opts.command,
                transport=opts.transport,
                timeout=opts.timeout,
                scenarios=opts.scenarios,
                cwd=folder,
                log=log,
                sandbox=opts.sandbox,
                slot=slot,
            )
    except CommandError as e:
        return _cannot_start(student, opts, e)
    runs = [c.data for c in report.checks]
    crashed = [
        c
        for c in report.checks
        if c.required and not c.passed and not c.data.get("timed_out") and c.data.get("exit")
    ]
    outcome = _outcome(report)
    if crashed and outcome == "failed":
        outcome = "crashed"
    elif outcome == "failed" and any(r.get("timed_out") for r in runs if r):
        outcome = "hung"
    return _from_report(student, report, log, outcome)


def _outcome(report: Report) -> str:
    """passed, failed, or what stopped the program: its sandbox (``cannot-start``) or a
    limit of it (``over-limit``)."""
    if report.setup_error:
        return "cannot-start"
    if report.limit and not report.ok:
        return "over-limit"
    return "passed" if report.ok else "failed"


class _Ports:
    """Free ports for the trackers, never the same one twice in a run (``--jobs``)."""

    def __init__(self) -> None:
        self.given: set[int] = set()

    def take(self) -> int:
        for _ in range(100):
            port = free_port()
            if port not in self.given:
                self.given.add(port)
                return port
        raise OSError("no free port")


async def _grade_peer(folder: Path, opts: GradeOptions, slot: int) -> Grade:
    student, log = folder.name, log_of(opts, folder.name)
    try:
        report = await run_peer_checks(
            opts.command,
            timeout=opts.timeout,
            stdin=opts.stdin,
            tracker_port=opts.tracker_port,
            cwd=folder,
            log=log,
            sandbox=opts.sandbox,
            slot=slot,
            assignment=opts.assignment,
        )
    except CommandError as e:
        return _cannot_start(student, opts, e)
    return _from_report(student, report, log, _outcome(report))


async def _listens(program: Program, port: int, within: float, part: int = 1) -> str | None:
    """None once something listens on ``port``; else why not (it exited, or time ran
    out)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        ports = listening_ports()
        if ports is None:  # not Linux: the tracker gets one REGISTER (ECHO) more
            if await _answers_register(port, part):
                return None
        elif port in ports:
            return None
        if program.returncode is not None:
            return "exited"
        if loop.time() >= deadline:
            return "timeout"
        await asyncio.sleep(_LOOK_EVERY)


async def _answers_register(port: int, part: int = 1) -> bool:
    try:
        reader, writer = await wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        # (Part 2: a pickled ECHO; raw Part 1 bytes stop the course's Part 2 tracker)
        writer.write(b"REGISTER" if part == 1 else encode_message(Echo("grader")))
        await wait_for(reader.read(1024), 2.0)
    except (OSError, asyncio.TimeoutError):
        pass
    finally:
        writer.close()
    return True


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return short_text(lines[-1], 120) if lines else ""


async def _grade_tracker(folder: Path, opts: GradeOptions, ports: _Ports, slot: int) -> Grade:
    port = ports.take()

    async def body(jail: Jail | None) -> Grade:
        return await _run_tracker(folder, opts, port, jail)

    try:
        grade, line = await contained(opts.sandbox, folder, body, slot)
    except CommandError as e:
        return _nothing(
            folder.name, opts, "cannot-start", str(e), "check the command and the folder"
        )
    grade.sandbox = line
    return grade


async def _run_tracker(folder: Path, opts: GradeOptions, port: int, jail: Jail | None) -> Grade:
    student, log = folder.name, log_of(opts, folder.name)
    argv = substitute(opts.command, {"host": "127.0.0.1", "port": port})
    program = Program(argv, cwd=folder, log=log, jail=jail)
    try:
        await program.start()
    except CommandError as e:
        return _cannot_start(student, opts, e)
    report: Report | None = None
    try:
        why = await _listens(program, port, opts.startup, opts.part)
        if why is None and opts.part == 2:
            report = await run_ring_tracker_checks(
                "127.0.0.1", port, timeout=opts.timeout, wait=opts.wait, assignment=opts.assignment
            )
        elif why is None:
            report = await run_tracker_checks(
                "127.0.0.1",
                port,
                transport=opts.transport,
                timeout=opts.timeout,
                deadline=opts.deadline,
            )
            if not report.ok:  # did it die of a check? (its exit can take a moment)
                await program.wait(EXIT_WAIT)
        exited = program.returncode
    finally:
        run = await program.stop()
    stderr = _last_line(run.stderr)
    if run.setup_error:
        return _nothing(
            student,
            opts,
            "cannot-start",
            f"the sandbox could not start it: {run.setup_error}",
            "check the command and the folder",
        )
    if report is None and exited is not None:
        detail = f"exited ({_exit_text(exited)}) before it listened on port {port}"
        detail += f"; {run.limit}" if run.limit else ""
        detail += f"; stderr: {stderr}" if stderr else ""
        outcome = "over-limit" if run.limit else "crashed"
        return _nothing(
            student, opts, outcome, detail, "run it by hand with the same command and port"
        )
    if report is None:
        detail = f"never listened on port {port} within {opts.startup:g} s"
        return _nothing(
            student,
            opts,
            "not-listening",
            detail,
            "take the port from the command line ({port}) and call listen() at start",
        )
    grade = _from_report(student, report, log, "passed" if report.ok else "failed")
    if exited is not None:
        grade.outcome = "over-limit" if run.limit else "crashed"
        grade.detail = (
            f"exited ({_exit_text(exited)}) while it was checked"
            + (f"; {run.limit}" if run.limit else "")
            + (f"; stderr: {stderr}" if stderr else "")
        )
    elif run.limit:
        grade.outcome = "over-limit"
        grade.detail = f"{run.limit}; {grade.detail}" if grade.detail else run.limit
    return grade


def _exit_text(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit {code}"


async def grade_all(
    folders: Sequence[Path],
    opts: GradeOptions,
    on_grade: Callable[[Grade], None] | None = None,
) -> list[Grade]:
    """Grade every student folder, ``opts.jobs`` at a time; ``on_grade`` sees each
    grade as it is made. The grades come back in the folders' order."""
    (opts.report_dir / "logs").mkdir(parents=True, exist_ok=True)
    slots: asyncio.Queue[int] = asyncio.Queue()
    for k in range(opts.jobs):
        slots.put_nowait(k)
    ports = _Ports()

    async def one(folder: Path) -> Grade:
        slot = await slots.get()
        try:
            return await graded(folder, slot)
        finally:
            slots.put_nowait(slot)

    async def graded(folder: Path, slot: int) -> Grade:
        log = log_of(opts, folder.name)
        log.write_bytes(b"")
        missing = _missing(folder, opts.command)
        choice = None
        if missing is None and opts.interpreters is not None:
            file = folder / named_files(opts.command)[0]
            choice = await asyncio.to_thread(choose, opts.interpreters, file)
        if missing is not None:
            grade = _nothing(
                folder.name,
                opts,
                "missing",
                f"no {missing} in the folder {folder.name}: {_what_it_holds(folder, missing)}",
                f"submit {missing} at the top of the folder, named exactly so",
            )
        elif choice is not None and choice.python is None:
            grade = _nothing(
                folder.name, opts, "cannot-start", choice.why, "fix the syntax error it names"
            )
        else:
            mine = opts
            if choice is not None and choice.python is not None:
                python = choice.python
                command = tuple(python if a == PLACEHOLDER else a for a in opts.command)
                mine = dataclasses.replace(opts, command=command)
            if opts.kind == "client":
                grade = await _grade_client(folder, mine, slot)
            elif opts.kind == "peer":
                grade = await _grade_peer(folder, mine, slot)
            else:
                grade = await _grade_tracker(folder, mine, ports, slot)
        if choice is not None:
            grade.python = choice.note
        rubric = opts.rubric or default_rubric(opts.assignment, required_checks_of(opts))
        grade.score, grade.max_score = rubric.score(grade.report), rubric.total
        if on_grade is not None:
            on_grade(grade)
        return grade

    return list(await asyncio.gather(*(one(f) for f in folders)))
