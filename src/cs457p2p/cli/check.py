"""``cs457p2p check tracker|client``: the conformance checker on the command line."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .args import EXIT_USAGE, Parser, address_arg, fail, positive_float

if TYPE_CHECKING:
    from ..checker.report import Report

__all__ = ["add_arguments", "run"]


def _common(p: argparse.ArgumentParser, what: str, timeout: float, timeout_help: str) -> None:
    """The options every check has: the transport, the timeout and ``--json``."""
    p.add_argument(
        "--transport",
        choices=("tcp", "udp"),
        default="tcp",
        help=f"{what} over TCP or UDP (default: tcp)",
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=timeout,
        metavar="SECONDS",
        help=f"{timeout_help} (default: {timeout:g})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object, not a table")


def add_arguments(k: argparse.ArgumentParser) -> None:
    from ..checker.scenarios import CLIENT_SCENARIOS

    ksub = k.add_subparsers(dest="check_command", metavar="WHAT", parser_class=Parser)
    ksub.required = True
    kt = ksub.add_parser(
        "tracker",
        help="check a running tracker",
        description="Talk to the tracker at HOST:PORT as clients would and report each"
        " property of the protocol as a named check.",
    )
    kt.add_argument("address", type=address_arg, metavar="HOST:PORT", help="the tracker")
    _common(kt, "run the checks", 5.0, "longest wait for one answer")
    kt.add_argument(
        "--deadline",
        type=positive_float,
        default=600.0,
        metavar="SECONDS",
        help="longest run of all the checks; those left are reported as not run (default: 600)",
    )
    kc = ksub.add_parser(
        "client",
        help="run a client against trackers started here",
        usage="cs457p2p check client [-h] [--transport {tcp,udp}] [--timeout SECONDS]"
        " [--json]\n                             [--scenario NAME] [--seed INT]"
        " -- COMMAND [ARGS...]",
        description="Run COMMAND (no shell) once per scenario against a tracker started on a\n"
        "free port of 127.0.0.1, with {host}, {port} and {transport} in its arguments\n"
        "replaced. It passes a scenario when its stdout holds that scenario's random\n"
        "message (a fresh one each time) and it exits within the timeout.",
        epilog="scenarios:\n"
        + "\n".join(
            f"  {s.name:<20} {s.description}"
            + ("" if len(s.transports) > 1 else f" ({s.transports[0].upper()} only)")
            for s in CLIENT_SCENARIOS
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(kc, "the scenarios for a client", 20.0, "longest run of the client in one scenario")
    kc.add_argument(
        "--scenario",
        action="append",
        choices=[s.name for s in CLIENT_SCENARIOS],
        metavar="NAME",
        help="run only this scenario (repeatable; default: all for the transport)",
    )
    kc.add_argument(
        "--seed",
        type=int,
        metavar="INT",
        help="make the secrets, shuffles and faults reproducible",
    )
    kc.add_argument(
        "program",
        nargs="*",
        metavar="COMMAND",
        help="after --: the client to run, e.g. -- python3 client.py {host} {port}",
    )
    kc.set_defaults(takes_command=True)


def _print_report(report: Report, as_json: bool) -> int:
    sys.stdout.write((report.json_text() if as_json else report.table()) + "\n")
    sys.stdout.flush()
    return report.exit_code


def run(args: argparse.Namespace) -> int:
    import asyncio

    from ..checker.client_checks import run_client_checks
    from ..checker.runner import CommandError, become_subreaper
    from ..checker.scenarios import scenarios_for
    from ..checker.tracker_checks import run_tracker_checks

    if args.check_command == "tracker":
        prog = "cs457p2p check tracker"
        host, port = args.address
        if port == 0:
            return fail(prog, "port 0 is not a tracker's port", EXIT_USAGE)
        report = asyncio.run(
            run_tracker_checks(
                host, port, transport=args.transport, timeout=args.timeout, deadline=args.deadline
            )
        )
        return _print_report(report, args.json)
    prog = "cs457p2p check client"
    become_subreaper()  # (orphans of the client's processes come here, to be killed)
    try:
        scenarios_for(args.transport, args.scenario)
    except ValueError as e:
        return fail(prog, str(e), EXIT_USAGE)
    try:
        report = asyncio.run(
            run_client_checks(
                args.program,
                transport=args.transport,
                timeout=args.timeout,
                scenarios=args.scenario,
                seed=args.seed,
            )
        )
    except CommandError as e:
        return fail(prog, str(e), EXIT_USAGE)
    return _print_report(report, args.json)
