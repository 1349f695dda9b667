"""What every command of the command line shares: the parser whose usage errors are one
line, the argument types, the exit codes, and the one-line error."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from ..core.addresses import DEFAULT_PORT, parse_address, parse_port

if TYPE_CHECKING:
    from ..core.database import Database
    from ..core.trace import Tracer

__all__ = [
    "BARE_PORT_HOST",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "HelpFormatter",
    "Parser",
    "add_examples",
    "address_arg",
    "fail",
    "load_db",
    "non_negative_float",
    "number",
    "port_arg",
    "positive_float",
    "positive_int",
    "probability",
    "stderr_tracer",
    "trace_arg",
]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus exit code 2), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, except that the lines of a text that start with a space (the
    examples of an epilog) are printed as written, not refilled."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n " not in text:
            return super()._fill_text(text, width, indent)
        fill = super()._fill_text
        return "\n".join(
            indent + line if line.startswith(" ") else fill(line, width, indent)
            for line in text.split("\n")
        )


def add_examples(parser: argparse.ArgumentParser, examples: Sequence[tuple[str, str]]) -> None:
    """End ``parser``'s help with ``examples:``, each a command line under a comment
    that says what it does (tests run them, so that they stay true)."""
    lines = ["examples:"]
    for what, command in examples:
        lines += [f"  # {what}", f"  {command}"]
    parser.epilog = "\n".join([parser.epilog, "", *lines] if parser.epilog else lines)
    if parser.formatter_class is argparse.HelpFormatter:
        parser.formatter_class = HelpFormatter


def fail(prog: str, message: str, code: int = EXIT_FAILURE) -> int:
    """Write ``prog: error: message`` on stderr; return ``code``."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.stderr.flush()
    return code


#: The host of an address given as a bare ``PORT``: IPv4 loopback, where the course's
#: tracker (and a student's, bound to ``localhost`` or ``''``) listens.
BARE_PORT_HOST = "127.0.0.1"


def address_arg(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``HOST:PORT`` (``[V6]:PORT``, ``HOST``, ``:PORT``) as ``(host, port)``; a bare
    ``PORT`` (digits only: no host is a number) is ``127.0.0.1:PORT``."""
    if text.isascii() and text.isdigit():
        return BARE_PORT_HOST, port_arg(text)
    try:
        return parse_address(text, default_port)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def port_arg(text: str) -> int:
    try:
        return parse_port(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def number(text: str) -> float:
    """A number, as argparse's type (what the other number types start from)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def positive_float(text: str) -> float:
    """A positive, finite number of seconds."""
    value = number(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def non_negative_float(text: str) -> float:
    """Zero or a positive, finite number of seconds (``--pace``)."""
    value = number(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or a positive number of seconds")
    return value


def probability(text: str) -> float:
    value = number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a probability in 0..1")
    return value


def trace_arg(parser: argparse.ArgumentParser) -> None:
    """``--trace``, as the client, the peer and the tracker take it."""
    parser.add_argument(
        "--trace",
        action="store_true",
        help="print each message sent and received on stderr, one line each: direction,"
        " the other side, the bytes and what they decode to",
    )


def stderr_tracer() -> Tracer:
    """``--trace``'s lines, written whole to stderr (from any thread); once stderr is
    gone (a closed pipe), dropped: the trace must not stop the program."""
    from ..core.trace import Tracer

    lock = threading.Lock()

    def write(line: str) -> None:
        with lock:
            try:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()
            except (OSError, ValueError):
                pass

    return Tracer(write)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def load_db(args: argparse.Namespace) -> Database:
    """The database ``--db FILE`` or ``--message TEXT`` names (else the built-in one),
    stored in the order ``--shuffle-seed`` makes. Raises DatabaseError."""
    from ..core.database import Database

    return Database.chosen(args.db, args.message, args.shuffle_seed)


def add_assignment(p: argparse.ArgumentParser, choices: tuple[str, ...], what: str) -> None:
    """``--assignment NAME``: judge as the course's assignment does (``what`` it is)."""
    p.add_argument(
        "--assignment",
        choices=choices,
        metavar="|".join(choices),
        help=f"judge {what} as the course's assignment does: its rules required, this"
        " project's robustness checks shown as INFO (docs/GRADING.md has each rule in the"
        " course's words)",
    )
