"""``cs457p2p check tracker|client``: the conformance checker on the command line."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .args import (
    EXIT_USAGE,
    Parser,
    add_assignment,
    add_examples,
    address_arg,
    fail,
    positive_float,
)
from .sandboxing import add_sandbox_arguments, sandbox_policy

if TYPE_CHECKING:
    from ..checker.report import Report

__all__ = ["add_arguments", "run"]


def _common(
    p: argparse.ArgumentParser, what: str, timeout: float | None, timeout_help: str
) -> None:
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
        help=timeout_help if timeout is None else f"{timeout_help} (default: {timeout:g})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object, not a table")


TRACKER_EXAMPLES = (
    ("the tracker on 127.0.0.1:7777 (7777 alone says the same)", "cs457p2p check tracker 7777"),
    ("over UDP, as JSON", "cs457p2p check tracker 127.0.0.1:7777 --transport udp --json"),
    (
        "a Part 2 tracker, freshly started; wait up to 30 s for its PINGs",
        "cs457p2p check tracker --part 2 127.0.0.1:7777 --wait 30",
    ),
)
CLIENT_EXAMPLES = (
    (
        "a client that takes the tracker's host and port as arguments",
        "cs457p2p check client -- python3 client.py {host} {port}",
    ),
    (
        "one scenario, this project's client, over UDP",
        "cs457p2p check client --transport udp --scenario udp-loss --"
        " cs457p2p client --tracker {host}:{port} --transport {transport}",
    ),
)
PEER_EXAMPLES = (
    (
        "a peer that takes the tracker's address, its handle and its port",
        "cs457p2p check peer -- python3 peer.py {tracker_host} {tracker_port} {handle} {port}",
    ),
    (
        "the course's sample peer: tracker on 127.0.0.1:7777, the rest on stdin",
        "cs457p2p check peer --tracker-port 7777 --stdin '{handle}\\n{port}\\n{host}\\n'"
        " -- python2 peer.py",
    ),
)


def add_arguments(k: argparse.ArgumentParser) -> None:
    from ..checker.profiles import CLIENT_ASSIGNMENTS, PEER_ASSIGNMENTS, TRACKER_ASSIGNMENTS
    from ..checker.scenarios import CLIENT_SCENARIOS

    add_examples(k, (TRACKER_EXAMPLES[0], CLIENT_EXAMPLES[0], PEER_EXAMPLES[0]))
    ksub = k.add_subparsers(dest="check_command", metavar="WHAT", parser_class=Parser)
    ksub.required = True
    kt = ksub.add_parser(
        "tracker",
        help="check a running tracker",
        description="Talk to the tracker at HOST:PORT as clients would and report each"
        " property of the protocol as a named check.",
    )
    kt.add_argument(
        "address",
        type=address_arg,
        metavar="HOST:PORT",
        help="the tracker (a bare PORT: 127.0.0.1:PORT)",
    )
    _common(kt, "run the checks", 5.0, "longest wait for one answer")
    add_examples(kt, TRACKER_EXAMPLES)
    kt.add_argument(
        "--deadline",
        type=positive_float,
        default=600.0,
        metavar="SECONDS",
        help="longest run of all the checks; those left are reported as not run (default: 600)",
    )
    kt.add_argument(
        "--part",
        type=int,
        choices=(1, 2),
        default=1,
        help="1: the Part 1 tracker (default); 2: the ring of Part 2, played by peers"
        " listening on 127.0.0.11, .12... (TCP only)",
    )
    kt.add_argument(
        "--wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="--part 2: how long to wait for a PING and for a dead peer to be pruned;"
        " 0 skips both (default: 30; the course's tracker pings every 20 s)",
    )
    add_assignment(kt, TRACKER_ASSIGNMENTS, "the tracker (--part 2)")
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
    _common(
        kc,
        "the scenarios for a client",
        None,
        "longest run of the client in one scenario (default: 20; 120 under --assignment"
        " hw08, 16 items at 2-3 s each)",
    )
    add_assignment(kc, CLIENT_ASSIGNMENTS, "the client")
    add_examples(kc, CLIENT_EXAMPLES)
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
    add_sandbox_arguments(kc)
    kc.add_argument(
        "program",
        nargs="*",
        metavar="COMMAND",
        help="after --: the client to run, e.g. -- python3 client.py {host} {port}",
    )
    kc.set_defaults(takes_command=True)
    kp = ksub.add_parser(
        "peer",
        help="run a Part 2 peer against a tracker and neighbours played here",
        usage="cs457p2p check peer [-h] [--timeout SECONDS] [--json] [--stdin TEMPLATE]"
        " [--tracker-port PORT]\n                           -- COMMAND [ARGS...]",
        description="Run COMMAND (no shell) as a peer: a tracker played here (as the"
        " course's answers)\nregisters it and names its neighbour, two peers played here"
        " give it the items.\nPlaceholders in ARGS and in --stdin: {tracker_host},"
        " {tracker_port}, {handle},\n{port}, {host}.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kp.add_argument(
        "--timeout",
        type=positive_float,
        default=60.0,
        metavar="SECONDS",
        help="longest run of the peer (default: 60; the course's sample peer takes 2 s an item)",
    )
    kp.add_argument("--json", action="store_true", help="print one JSON object, not a table")
    kp.add_argument(
        "--stdin",
        metavar="TEMPLATE",
        help="what to write to its stdin, placeholders replaced and \\n a newline"
        " (e.g. '{handle}\\n{port}\\n{host}\\n' for the course's sample peer)",
    )
    kp.add_argument(
        "--tracker-port",
        type=int,
        metavar="PORT",
        help="the played tracker's port on 127.0.0.1 (default: a free one), for a peer"
        " with the tracker's address written in (the course's: 7777)",
    )
    add_assignment(kp, PEER_ASSIGNMENTS, "the peer")
    add_sandbox_arguments(kp)
    kp.add_argument(
        "program",
        nargs="*",
        metavar="COMMAND",
        help="after --: the peer to run, e.g. -- python3 peer.py {tracker_port} {port}",
    )
    kp.set_defaults(takes_command=True)
    add_examples(kp, PEER_EXAMPLES)


def _print_report(report: Report, as_json: bool) -> int:
    if report.stopped and not as_json:  # (nothing could be checked: one line, not a table)
        return fail(f"cs457p2p check {report.kind}", report.stopped)
    sys.stdout.write((report.json_text() if as_json else report.table()) + "\n")
    sys.stdout.flush()
    return report.exit_code


def run(args: argparse.Namespace) -> int:
    import asyncio

    from ..checker.assignments import run_hw08
    from ..checker.client_checks import run_client_checks
    from ..checker.profiles import HW08_TIMEOUT
    from ..checker.runner import CommandError, become_subreaper
    from ..checker.scenarios import scenarios_for
    from ..checker.tracker_checks import run_tracker_checks
    from ..net import raise_fd_limit

    raise_fd_limit()  # (the checker's own servers and connections: one file each)

    if args.check_command == "tracker":
        prog = "cs457p2p check tracker"
        host, port = args.address
        if port == 0:
            return fail(prog, "port 0 is not a tracker's port", EXIT_USAGE)
        if args.assignment and args.part != 2:
            return fail(prog, f"--assignment {args.assignment} is for --part 2", EXIT_USAGE)
        if args.part == 2:
            from ..checker.ring_tracker_checks import run_ring_tracker_checks

            if args.transport != "tcp":
                return fail(prog, "--part 2 is TCP only (the ring has no UDP)", EXIT_USAGE)
            if args.wait < 0:
                return fail(prog, "--wait: must be 0 or more seconds", EXIT_USAGE)
            report = asyncio.run(
                run_ring_tracker_checks(
                    host,
                    port,
                    timeout=args.timeout,
                    wait=args.wait,
                    assignment=args.assignment or "",
                )
            )
            return _print_report(report, args.json)
        report = asyncio.run(
            run_tracker_checks(
                host, port, transport=args.transport, timeout=args.timeout, deadline=args.deadline
            )
        )
        return _print_report(report, args.json)
    if args.check_command == "peer":
        return _check_peer(args)
    prog = "cs457p2p check client"
    try:
        scenarios_for(args.transport, args.scenario)
    except ValueError as e:
        return fail(prog, str(e), EXIT_USAGE)
    if args.assignment and (args.scenario or args.transport != "tcp"):
        return fail(
            prog, f"--assignment {args.assignment} runs its own scenarios, over TCP", EXIT_USAGE
        )
    policy = sandbox_policy(args, prog)
    if isinstance(policy, int):
        return policy
    become_subreaper()  # (without a sandbox: orphans of the client come here, to be killed)
    try:
        if args.assignment == "hw08":
            report = asyncio.run(
                run_hw08(
                    args.program,
                    timeout=args.timeout or HW08_TIMEOUT,
                    seed=args.seed,
                    sandbox=policy,
                )
            )
        else:
            report = asyncio.run(
                run_client_checks(
                    args.program,
                    transport=args.transport,
                    timeout=args.timeout or 20.0,
                    scenarios=args.scenario,
                    seed=args.seed,
                    sandbox=policy,
                )
            )
    except CommandError as e:
        return fail(prog, str(e), EXIT_USAGE)
    return _print_report(report, args.json)


def _check_peer(args: argparse.Namespace) -> int:
    import asyncio

    from ..checker.peer_checks import run_peer_checks
    from ..checker.runner import CommandError, become_subreaper
    from ..net import raise_fd_limit

    prog = "cs457p2p check peer"
    if args.tracker_port is not None and not 1 <= args.tracker_port <= 65535:
        return fail(prog, "--tracker-port: not in 1..65535", EXIT_USAGE)
    policy = sandbox_policy(args, prog)
    if isinstance(policy, int):
        return policy
    become_subreaper()
    raise_fd_limit()
    try:
        report = asyncio.run(
            run_peer_checks(
                args.program,
                timeout=args.timeout,
                stdin=args.stdin,
                tracker_port=args.tracker_port,
                sandbox=policy,
                assignment=args.assignment or "",
            )
        )
    except CommandError as e:
        return fail(prog, str(e), EXIT_USAGE)
    return _print_report(report, args.json)
