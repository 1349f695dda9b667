"""The ``cs457p2p`` command: one subcommand per module of this package.

Errors are one line on stderr: exit 2 for usage and configuration errors (bad flags, a
bad database), 1 for failures at run time (connection refused, a lying tracker...).

Each command imports what it runs, when it runs: ``main`` builds only the options of
the command it runs (the others keep their one-line help), so a TCP client loads
neither asyncio nor the tracker, the checker or the benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import shlex
import sys
from collections.abc import Sequence
from typing import Protocol

from .. import __version__
from ..core.addresses import format_address
from .args import EXIT_USAGE, Parser, add_examples, fail

__all__ = ["COMMANDS", "build_parser", "main", "parse", "unrecognized"]


class _Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...
    def run(self, args: argparse.Namespace) -> int: ...


#: name -> (module of this package, one-line help, description)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "tracker": (
        "tracker",
        "serve a database of items",
        "Serve a shuffled database of items to clients (Part 1) and keep the ring of"
        " peers (Part 2), over TCP and UDP on one port.",
    ),
    "client": (
        "client",
        "collect every item and print the message",
        "Register, collect every item and print the assembled message.",
    ),
    "peer": (
        "peer",
        "join a ring of peers and collect every item from them (Part 2)",
        "Register with a Part 2 tracker, host an item, collect every item from the"
        " neighbour in the ring, print the message, and keep serving the others.",
    ),
    "simulate": (
        "simulate",
        "simulate a Part 2 ring of many peers on a virtual clock",
        "Run the tracker's ring keeping and P peers, the same sans-I/O code the real"
        " processes run, on a virtual clock and a simulated network, in one process;"
        " print the (virtual) time until every peer holds the message, the messages sent"
        " by kind, and the peers lost and rejoined under churn. Deterministic for a seed.",
    ),
    "bench": (
        "bench",
        "measure full client sessions against a tracker",
        "Run C concurrent full client sessions (register, fetch every item, assemble,"
        " check every message against the first), R rounds, in one process; print items/s"
        " and session times. Without --tracker, start a tracker in another process on"
        " 127.0.0.1 serving --items generated words.",
    ),
    "demo": (
        "demo",
        "run a tracker and a client in one process",
        "Start a tracker with the built-in database on a free port and run the client"
        " against it; with --peers P, P Part 2 peers in a ring around it instead.",
    ),
    "check": (
        "check",
        "check someone else's tracker, client or peer (conformance, grading)",
        "Run named conformance checks against a tracker, or run a client against"
        " trackers started here, or a Part 2 peer against a tracker and peers played"
        " here. Exit 0 when every required check passes, 1 when one fails, 2 for a"
        " usage error.",
    ),
    "grade": (
        "grade",
        "grade a folder of submissions, one subfolder per student",
        "Run the checks of `check client`, `check tracker` or `check peer` for every student of a"
        " class and write one report (a table, CSV, JSON and each student's output)."
        " Exit 0 once every student is graded, 2 for a usage error.",
    ),
    "autograder": (
        "autograder",
        "write a Gradescope autograder (a zip) for an assignment",
        "Write a ready Gradescope autograder: setup.sh, run_autograder and this project as"
        " a wheel, which checks each submission with `check client|peer --assignment` and"
        " writes Gradescope's results.json (score, one test per check, the hints).",
    ),
    "wireshark": (
        "wireshark",
        "where the Wireshark dissector is, or install it",
        "Print where the Wireshark dissector of the protocol (a Lua plugin shipped with"
        " the package) is and how to use it with tshark and Wireshark, or copy it into"
        " Wireshark's personal plugins folder (--install).",
    ),
}


def _command(name: str) -> _Command:
    module: _Command = importlib.import_module(f"{__package__}.{COMMANDS[name][0]}")
    return module


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``cs457p2p`` parser. With ``command``, only that command's options are filled
    in (the others keep their one-line help): running a command then imports nothing
    that only another command's options need."""
    parser = Parser(
        prog="cs457p2p",
        description="The cs457 P2P protocol: a safe, concurrent tracker, client and peer,"
        " and a checker and grader of students' programs.",
    )
    add_examples(
        parser,
        (
            ("a tracker and a client, in one process", "cs457p2p demo"),
            ("a command's options, and examples of it", "cs457p2p tracker --help"),
        ),
    )
    parser.add_argument("--version", action="version", version=f"cs457p2p {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name, (_, help_text, description) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=description)
        if command in (None, name):
            _command(name).add_arguments(p)
    return parser


def _prog(args: argparse.Namespace) -> str:
    """``cs457p2p tracker``, ``cs457p2p check tracker``: the command that ran."""
    words = ["cs457p2p", args.command]
    sub = getattr(args, "check_command", None) or getattr(args, "grade_command", None)
    return " ".join([*words, sub] if sub else words)


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and int(text) <= 65535


def unrecognized(args: argparse.Namespace, extra: Sequence[str]) -> str:
    """The usage error for arguments left over: what was likely meant (the tracker's
    address and port are options, written ``HOST:PORT``), and where to read more."""
    text = f"unrecognized arguments: {shlex.join(extra)}"
    ports = [w for w in extra if _is_port(w)]
    words = [w for w in extra if not w.startswith("-") and not _is_port(w)]
    meant = ""
    if args.command == "tracker" and len(ports) == 1 and not words:
        meant = f"the port is an option: cs457p2p tracker --port {ports[0]}"
    elif args.command in ("client", "bench", "peer") and len(ports) + len(words) in (1, 2):
        if len(ports) <= 1 and len(words) <= 1:
            address = words[0] if words else "127.0.0.1"
            address += f":{ports[0]}" if ports else ""
            meant = f"the tracker is an option: cs457p2p {args.command} --tracker {address}"
    elif args.command == "check" and args.check_command == "tracker" and extra == ports[:1]:
        address = format_address(args.address[0], int(ports[0]))
        meant = f"write the address as one argument: cs457p2p check tracker {address}"
    elif getattr(args, "takes_command", False):
        program = shlex.join([*getattr(args, "program", []), *extra])
        meant = f"put the program after --: {_prog(args)} [OPTIONS] -- {program}"
    see = f"see {_prog(args)} --help"
    return f"{text} ({meant}; {see})" if meant else f"{text} ({see})"


def parse(argv: Sequence[str]) -> argparse.Namespace | int:
    """``argv`` (after ``cs457p2p``) read as :func:`main` reads it: the arguments, or the
    exit code of a usage error, already said in one line on stderr. (``--help`` and
    argparse's own errors exit, as everywhere.)"""
    argv = list(argv)
    # Everything after the first "--" is the COMMAND of "check client", whatever it
    # looks like (its own options included), on every Python version.
    after: list[str] | None = None
    if "--" in argv:
        k = argv.index("--")
        argv, after = argv[:k], argv[k + 1 :]
    name = argv[0] if argv and argv[0] in COMMANDS else None
    parser = build_parser(name)
    args, extra = parser.parse_known_args(argv)
    if extra:
        return fail(_prog(args), unrecognized(args, extra), EXIT_USAGE)
    if after is not None:
        if getattr(args, "takes_command", False):
            args.program = [*args.program, *after]
        elif after:
            parser.error(f"unrecognized arguments after --: {shlex.join(after)}")
    if getattr(args, "takes_command", False) and not args.program:
        return fail(
            f"cs457p2p {args.command} {args.check_command}",
            f"missing COMMAND: write the {args.check_command}'s command line after --",
            EXIT_USAGE,
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if isinstance(args, int):
        return args
    with contextlib.suppress(KeyboardInterrupt):
        return _command(args.command).run(args)
    return 130
