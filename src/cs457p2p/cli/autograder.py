"""``cs457p2p autograder client|peer --assignment hw08|hw09 -o autograder.zip``: a ready
Gradescope autograder for the assignment."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .args import EXIT_USAGE, add_examples, fail

__all__ = ["add_arguments", "run"]

EXAMPLES = (
    (
        "HW08's autograder, the submission's client.py run with the right Python",
        "cs457p2p autograder client --assignment hw08 -o autograder.zip",
    ),
    (
        "HW09's, for a peer in p2p.py (--rubric FILE: points of your own)",
        "cs457p2p autograder peer --assignment hw09 --command '{python} p2p.py' -o autograder.zip",
    ),
)

_KINDS = {"client": "hw08", "peer": "hw09"}


def add_arguments(a: argparse.ArgumentParser) -> None:
    add_examples(a, EXAMPLES)
    a.add_argument("kind", choices=sorted(_KINDS), metavar="client|peer")
    a.add_argument("--assignment", required=True, choices=sorted(_KINDS.values()))
    a.add_argument("-o", "--output", type=Path, required=True, metavar="ZIP")
    a.add_argument(
        "--command",
        dest="student_command",
        metavar="COMMAND",
        help="how a submission's program runs, placeholders as in check (default: '{python}"
        " client.py {host} {port}' for hw08, '{python} peer.py' for hw09, the peer answering"
        " the course's starter's four questions on stdin)",
    )
    a.add_argument(
        "--rubric", type=Path, metavar="FILE", help="points per check (TOML), packed in the zip"
    )


def run(args: argparse.Namespace) -> int:
    import cs457p2p

    from ..checker.autograder import build_autograder

    prog = "cs457p2p autograder"
    if _KINDS[args.kind] != args.assignment:
        return fail(prog, f"--assignment {args.assignment} is not for a {args.kind}", EXIT_USAGE)
    command = None
    if args.student_command is not None:
        try:
            command = shlex.split(args.student_command)
        except ValueError as e:
            return fail(prog, f"--command: {e}", EXIT_USAGE)
        if not command:
            return fail(prog, "--command is empty", EXIT_USAGE)
    if args.rubric is not None and not args.rubric.is_file():
        return fail(prog, f"--rubric {args.rubric}: no such file", EXIT_USAGE)
    package = Path(cs457p2p.__file__).parent
    data = build_autograder(
        args.kind, args.assignment, package, cs457p2p.__version__, command, args.rubric
    )
    try:
        args.output.write_bytes(data)
    except OSError as e:
        return fail(prog, f"cannot write {args.output}: {e.strerror or e}")
    sys.stdout.write(
        f"wrote {args.output} ({len(data):,} bytes): upload it as the Gradescope autograder"
        f" of {args.assignment}\n"
    )
    return 0
