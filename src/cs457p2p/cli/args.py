"""What every command of the command line shares: the parser whose usage errors are one
line, the argument types, the exit codes, and the one-line error."""

from __future__ import annotations

import argparse
import sys
import threading
from typing import TYPE_CHECKING, NoReturn

from ..core.addresses import parse_address, parse_port

if TYPE_CHECKING:
    from ..core.trace import Tracer

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "Parser",
    "address_arg",
    "fail",
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


def fail(prog: str, message: str, code: int = EXIT_FAILURE) -> int:
    """Write ``prog: error: message`` on stderr; return ``code``."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.stderr.flush()
    return code


def address_arg(text: str, default_port: int = 7777) -> tuple[str, int]:
    """``HOST:PORT`` (``[V6]:PORT``, ``HOST``, ``:PORT``) as ``(host, port)``."""
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
