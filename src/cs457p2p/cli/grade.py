"""``cs457p2p grade client|tracker|peer SUBMISSIONS --command CMD``: grade a class."""

from __future__ import annotations

import argparse
import shlex
import sys
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
    """The rows, printed as the grades come."""

    def __init__(self, names: list[str]) -> None:
        self.w = max(len("student"), *(len(n) for n in names))
        self.head = f"{'student':<{self.w}}  {'outcome':<13}  {'passed':<6}  failed / hint"
        print(self.head, flush=True)

    def row(self, g: Grade) -> None:
        score = f"{g.passed}/{g.required}"
        what = ", ".join(g.failed) or ("" if g.outcome == "passed" else g.detail)
        line = f"{g.student:<{self.w}}  {g.outcome:<13}  {score:<6}  {what}".rstrip()
        pad = " " * (self.w + 27)
        if g.hint:
            line += f"\n{pad}hint: {g.hint}"
        for warning in g.warnings:
            line += f"\n{pad}warning: {warning}"
        print(line, flush=True)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from ..checker.class_report import ClassReport
    from ..checker.grade import (
        OUTCOMES,
        REPORT_FOLDER,
        GradeError,
        GradeOptions,
        grade_all,
        students_in,
    )
    from ..checker.profiles import HW08_TIMEOUT
    from ..checker.runner import become_subreaper
    from ..checker.scenarios import scenarios_for
    from ..net import raise_fd_limit

    kind = args.grade_command
    prog = f"cs457p2p grade {kind}"
    stdin = getattr(args, "stdin", None)
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
    except GradeError as e:
        return fail(prog, str(e), EXIT_USAGE)
    except OSError as e:
        return fail(prog, f"{report_dir}: {e.strerror or e}", EXIT_USAGE)
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
    )
    become_subreaper()  # (without a sandbox: orphans of the students' programs come here)
    raise_fd_limit()  # (the checker's own servers and connections: one file each)
    csv_path = args.csv or report_dir / "grades.csv"
    json_path = args.json or report_dir / "grades.json"
    files = ClassReport([f.name for f in folders], opts, csv_path, json_path)
    table = _Table([f.name for f in folders])

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
    grades = files.rows()
    counts = {k: sum(g.outcome == k for g in grades) for k in OUTCOMES}
    tally = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    print(f"graded {len(grades)} students: {tally}; report: {csv_path}, {json_path}")
    sys.stdout.flush()
    return 0
