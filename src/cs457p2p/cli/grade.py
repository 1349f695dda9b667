"""``cs457p2p grade client|tracker|peer SUBMISSIONS --command CMD``: grade a class."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .args import (
    EXIT_USAGE,
    Parser,
    add_assignment,
    add_examples,
    fail,
    positive_float,
    positive_int,
)
from .sandboxing import add_sandbox_arguments, sandbox_policy

if TYPE_CHECKING:
    from ..checker.grade import Grade

__all__ = ["add_arguments", "run"]

_EXAMPLES = {
    "client": "python3 client.py {host} {port}",
    "tracker": "python3 tracker.py {port}",
    "peer": "python3 peer.py {tracker_port} {port}",
}


#: Per kind: (what it does, the command line), for each --help.
GRADE_EXAMPLES = {
    "client": (
        (
            "every subfolder of submissions/ is a student; 4 graded at once",
            "cs457p2p grade client submissions --command 'python3 client.py {host} {port}'"
            " --jobs 4",
        ),
    ),
    "tracker": (
        (
            "each student's tracker, started on a free port",
            "cs457p2p grade tracker submissions --command 'python3 tracker.py {port}'",
        ),
        (
            "Part 2 trackers (the ring)",
            "cs457p2p grade tracker submissions --part 2 --command 'python3 tracker.py {port}'",
        ),
    ),
    "peer": (
        (
            "each student's Part 2 peer",
            "cs457p2p grade peer submissions --command 'python3 peer.py {tracker_port} {port}'",
        ),
    ),
}


def _command_arg(text: str) -> list[str]:
    try:
        argv = shlex.split(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"cannot split the command: {e}") from None
    if not argv:
        raise argparse.ArgumentTypeError("the command is empty")
    return argv


def add_arguments(g: argparse.ArgumentParser) -> None:
    gsub = g.add_subparsers(dest="grade_command", metavar="WHAT", parser_class=Parser)
    gsub.required = True
    add_examples(g, [examples[0] for examples in GRADE_EXAMPLES.values()])
    from ..checker.profiles import CLIENT_ASSIGNMENTS, PEER_ASSIGNMENTS, TRACKER_ASSIGNMENTS

    for kind, timeout, timeout_help, profiles in (
        (
            "client",
            None,
            "longest run of a client in one scenario (default: 20; 120 under --assignment hw08)",
            CLIENT_ASSIGNMENTS,
        ),
        ("tracker", 5.0, "longest wait for one answer of a tracker", TRACKER_ASSIGNMENTS),
        ("peer", 60.0, "longest run of a Part 2 peer", PEER_ASSIGNMENTS),
    ):
        p = gsub.add_parser(
            kind,
            help=f"grade a folder of {kind}s, one subfolder per student",
            description=f"Grade every subfolder of SUBMISSIONS (one per student; hidden"
            f" folders and the report's are skipped) as `cs457p2p check {kind}` would,"
            f" running COMMAND in the student's folder. Prints one row per student and"
            f" writes grades.csv, grades.json and each student's output (logs/) into the"
            f" report's folder.",
        )
        add_examples(p, GRADE_EXAMPLES[kind])
        p.add_argument("submissions", type=Path, metavar="SUBMISSIONS")
        p.add_argument(
            "--command",
            dest="student_command",
            type=_command_arg,
            required=True,
            metavar="COMMAND",
            help=f"the command line of a student's {kind}, with {{port}}"
            + (" (and {host})" if kind == "client" else "")
            + (
                " (or in --stdin), {tracker_host}, {tracker_port}, {handle}, {host}"
                if kind == "peer"
                else ""
            )
            + "; {python}: the Python 2.7 or 3 that compiles the student's file"
            + f", e.g. '{_EXAMPLES[kind]}'",
        )
        p.add_argument(
            "--report-dir",
            type=Path,
            metavar="DIR",
            help=f"where the report and the logs go (default: SUBMISSIONS/grading-report/{kind})",
        )
        p.add_argument("--csv", type=Path, metavar="FILE", help="the CSV (default: DIR/grades.csv)")
        p.add_argument(
            "--json", type=Path, metavar="FILE", help="the JSON (default: DIR/grades.json)"
        )
        p.add_argument(
            "--jobs",
            type=positive_int,
            default=1,
            metavar="J",
            help="students graded at once (default: 1)",
        )
        p.add_argument(
            "--timeout",
            type=positive_float,
            default=timeout,
            metavar="SECONDS",
            help=timeout_help if timeout is None else f"{timeout_help} (default: {timeout:g})",
        )
        add_assignment(p, profiles, f"each {kind}")
        if kind != "peer":
            p.add_argument(
                "--transport",
                choices=("tcp", "udp"),
                default="tcp",
                help="grade over TCP or UDP (default: tcp; Part 2 is TCP only)",
            )
        # (a client is Part 1 and a peer Part 2: their --part, a choice of one, is taken
        # but not offered)
        part = 2 if kind == "peer" else 1
        p.add_argument(
            "--part",
            type=int,
            choices=(1, 2) if kind == "tracker" else (part,),
            default=part,
            help="1: the Part 1 tracker (default); 2: the ring, as check tracker --part 2"
            if kind == "tracker"
            else argparse.SUPPRESS,
        )
        p.add_argument(
            "--python2",
            metavar="PATH",
            help="the Python 2.7 that {python} in COMMAND may be (default: python2.7,"
            " python2, or pyenv's 2.7)",
        )
        p.add_argument(
            "--python3",
            metavar="PATH",
            help="the Python 3 that {python} in COMMAND may be (default: python3)",
        )
        p.add_argument(
            "--only",
            nargs="+",
            metavar="NAME",
            help="grade only these students (their rows replace theirs in the report; the"
            " others are kept)",
        )
        p.add_argument(
            "--rubric",
            type=Path,
            metavar="FILE",
            help="points per check (TOML: [points] check = points); default: the"
            " assignment's, or one point per required check",
        )
        if kind == "peer":
            p.add_argument(
                "--stdin",
                metavar="TEMPLATE",
                help="what each peer's stdin gets, as check peer --stdin",
            )
            p.add_argument(
                "--tracker-port",
                type=int,
                metavar="PORT",
                help="the played tracker's fixed port (then --jobs must be 1)",
            )
        if kind == "client":
            from ..checker.scenarios import CLIENT_SCENARIOS

            p.add_argument(
                "--scenario",
                action="append",
                choices=[s.name for s in CLIENT_SCENARIOS],
                metavar="NAME",
                help="run only this scenario (repeatable; default: all for the transport;"
                " see cs457p2p check client --help)",
            )
        add_sandbox_arguments(p)
        if kind == "tracker":
            p.add_argument(
                "--startup",
                type=positive_float,
                default=10.0,
                metavar="SECONDS",
                help="longest wait for a tracker to listen (default: 10)",
            )
            p.add_argument(
                "--deadline",
                type=positive_float,
                default=300.0,
                metavar="SECONDS",
                help="longest run of one tracker's checks (default: 300)",
            )
            p.add_argument(
                "--wait",
                type=float,
                default=30.0,
                metavar="SECONDS",
                help="--part 2: the wait for a PING and a prune (default: 30; 0 skips them)",
            )


class _Table:
    """The rows, printed as the grades come, and on a terminal a line below them that
    counts the students done and says when the rest should be."""

    def __init__(self, names: list[str], total: float) -> None:
        self.w = max(len("student"), *(len(n) for n in names))
        self.total = total
        self.count = len(names)
        self.done = 0
        self.started = time.monotonic()
        self.live = sys.stdout.isatty()
        head = f"{'student':<{self.w}}  {'outcome':<13}  {'passed':<6}  {'score':<9}"
        print(f"{head}  failed / hint", flush=True)

    def row(self, g: Grade) -> None:
        self.done += 1
        passed = f"{g.passed}/{g.required}"
        score = f"{g.score:g}/{self.total:g}"
        what = ", ".join(g.failed) or ("" if g.outcome == "passed" else g.detail)
        line = f"{g.student:<{self.w}}  {g.outcome:<13}  {passed:<6}  {score:<9}  {what}"
        pad = " " * (self.w + 38)
        if g.python:
            line = line.rstrip() + f"\n{pad}python: {g.python}"
        if g.hint:
            line = line.rstrip() + f"\n{pad}hint: {g.hint}"
        for warning in g.warnings:
            line = line.rstrip() + f"\n{pad}warning: {warning}"
        if self.live:
            sys.stdout.write("\r\x1b[K")  # (the count line goes; the row takes its place)
        print(line.rstrip(), flush=True)
        if self.live and self.done < self.count:
            spent = time.monotonic() - self.started
            left = spent / self.done * (self.count - self.done)
            sys.stdout.write(f"graded {self.done}/{self.count}, about {_duration(left)} left")
            sys.stdout.flush()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


#: The placeholders each kind's command may hold.
PLACEHOLDERS = {
    "client": ("host", "port", "transport", "python"),
    "tracker": ("host", "port", "python"),
    "peer": ("tracker_host", "tracker_port", "handle", "port", "host", "python"),
}


def unknown_placeholder(kind: str, texts: list[str]) -> str | None:
    """The first ``{name}`` in ``texts`` that is no placeholder of ``kind``, or None."""
    for text in texts:
        for name in re.findall(r"\{([^{}\s]*)\}", text):
            if name not in PLACEHOLDERS[kind]:
                return str(name)
    return None


def run(args: argparse.Namespace) -> int:
    import asyncio

    from ..checker.class_report import ClassReport, mark_report
    from ..checker.grade import (
        OUTCOMES,
        REPORT_FOLDER,
        GradeError,
        GradeOptions,
        all_checks,
        grade_all,
        required_checks,
        students_in,
    )
    from ..checker.interpreters import PLACEHOLDER, find_interpreters
    from ..checker.profiles import HW08_TIMEOUT
    from ..checker.report import plural
    from ..checker.rubric import RubricError, default_rubric, load_rubric
    from ..checker.runner import become_subreaper
    from ..checker.scenarios import scenarios_for
    from ..net import raise_fd_limit

    kind = args.grade_command
    prog = f"cs457p2p grade {kind}"
    stdin = getattr(args, "stdin", None)
    wrong = unknown_placeholder(kind, [*args.student_command, stdin or ""])
    if wrong is not None:
        valid = ", ".join("{" + n + "}" for n in PLACEHOLDERS[kind])
        return fail(prog, f"{{{wrong}}} is no placeholder of --command; use {valid}", EXIT_USAGE)
    # (under an assignment the course's address is served too: it may be written in)
    has_port = any("{port}" in a for a in args.student_command) or "{port}" in (stdin or "")
    if not has_port and not args.assignment:
        return fail(
            prog,
            f"--command must contain {{port}}, e.g. '{_EXAMPLES[kind]}': it is replaced by"
            " the port of each run",
            EXIT_USAGE,
        )
    transport = getattr(args, "transport", "tcp")
    if args.assignment == "p2" and args.part != 2:
        return fail(prog, "--assignment p2 is for --part 2", EXIT_USAGE)
    if args.part == 2 and transport != "tcp":
        return fail(prog, "--part 2 is TCP only (the ring has no UDP)", EXIT_USAGE)
    tracker_port = getattr(args, "tracker_port", None)
    if tracker_port is not None and not 1 <= tracker_port <= 65535:
        return fail(prog, "--tracker-port: not in 1..65535", EXIT_USAGE)
    if tracker_port is not None and args.jobs > 1:
        return fail(prog, "--tracker-port with --jobs over 1: the peers would share it", EXIT_USAGE)
    if getattr(args, "wait", 0.0) < 0:
        return fail(prog, "--wait: must be 0 or more seconds", EXIT_USAGE)
    try:
        scenarios_for(transport, getattr(args, "scenario", None))
    except ValueError as e:
        return fail(prog, str(e), EXIT_USAGE)
    folder = f"{kind}-part2" if kind == "tracker" and args.part == 2 else kind
    report_dir = args.report_dir or args.submissions / REPORT_FOLDER / folder
    try:
        folders = students_in(args.submissions, report_dir)
        report_dir.mkdir(parents=True, exist_ok=True)
        mark_report(report_dir)
    except GradeError as e:
        return fail(prog, str(e), EXIT_USAGE)
    except OSError as e:
        return fail(prog, f"{report_dir}: {e.strerror or e}", EXIT_USAGE)
    everyone = [f.name for f in folders]
    if args.only:
        unknown = sorted(set(args.only) - set(everyone))
        if unknown:
            return fail(prog, f"--only {unknown[0]}: no such student folder", EXIT_USAGE)
        folders = [f for f in folders if f.name in args.only]
    interpreters = None
    if PLACEHOLDER in args.student_command:
        interpreters = find_interpreters(args.python2, args.python3)
        if interpreters.python2 is None and interpreters.python3 is None:
            return fail(prog, "{python}: no Python 2.7 or 3 found (--python2, --python3)")
    required = required_checks(kind, args.part, args.assignment or "", transport,
                               getattr(args, "scenario", None))  # fmt: skip
    try:
        rubric = (
            load_rubric(args.rubric, all_checks(kind, args.part, args.assignment or ""))
            if args.rubric
            else default_rubric(args.assignment or "", required)
        )
    except RubricError as e:
        return fail(prog, str(e), EXIT_USAGE)
    policy = sandbox_policy(args, prog)
    if isinstance(policy, int):
        return policy
    opts = GradeOptions(
        kind=kind,
        command=tuple(args.student_command),
        report_dir=report_dir,
        timeout=args.timeout or (HW08_TIMEOUT if args.assignment == "hw08" else 20.0),
        jobs=args.jobs,
        transport=transport,
        deadline=getattr(args, "deadline", 300.0),
        startup=getattr(args, "startup", 10.0),
        scenarios=tuple(args.scenario) if getattr(args, "scenario", None) else None,
        part=args.part,
        wait=getattr(args, "wait", 30.0),
        stdin=stdin,
        tracker_port=tracker_port,
        sandbox=policy,
        assignment=args.assignment or "",
        interpreters=interpreters,
        rubric=rubric,
    )
    become_subreaper()  # (without a sandbox: orphans of the students' programs come here)
    raise_fd_limit()  # (the checker's own servers and connections: one file each)
    csv_path = args.csv or report_dir / "grades.csv"
    json_path = args.json or report_dir / "grades.json"
    files = ClassReport(everyone, opts, csv_path, json_path)
    if args.only:
        files.keep_earlier()  # (the others' rows as the last run left them)
    table = _Table([f.name for f in folders], rubric.total)

    def graded(g: Grade) -> None:
        table.row(g)
        files.add(g)

    try:
        files.write()
        asyncio.run(grade_all(folders, opts, graded))
    except KeyboardInterrupt:
        files.write()
        done = len(files.grades)
        print(
            f"stopped: {done} of {len(folders)} students graded, the rest not-graded;"
            f" report: {csv_path}, {json_path}"
        )
        sys.stdout.flush()
        return 130
    except OSError as e:
        return fail(prog, f"cannot write the report: {e.strerror or e}")
    rows = files.rows()
    counts = {k: sum(r["outcome"] == k for r in rows) for k in OUTCOMES}
    tally = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    count = len(folders)
    whom = plural(count, "student") + (f" of {len(rows)}" if count != len(rows) else "")
    print(f"graded {whom}: {tally}; report: {csv_path}, {json_path}")
    sys.stdout.flush()
    return 0
