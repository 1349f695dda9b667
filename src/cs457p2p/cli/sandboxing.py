"""The sandbox's options, shared by every command that runs students' programs
(``check client``, ``check peer``, ``grade ...``), and the policy they make."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .args import EXIT_USAGE, fail, positive_int

if TYPE_CHECKING:
    from ..checker.sandbox import SandboxPolicy

__all__ = ["add_sandbox_arguments", "sandbox_policy"]


def add_sandbox_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "sandbox",
        "On Linux every run of a student's program is sandboxed with bubblewrap: its own"
        " network (loopback only), pid and mount namespaces, a private copy of its folder,"
        " run-wide limits, an unprivileged uid. See docs/GRADING.md.",
    )
    how = g.add_mutually_exclusive_group()
    how.add_argument(
        "--require-sandbox",
        action="store_true",
        help="stop with an error, before any program runs, when no sandbox can be made",
    )
    how.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run the programs without a sandbox (trusted code only)",
    )
    g.add_argument(
        "--share",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="a folder every program may read (e.g. a course library), also put on its"
        " PYTHONPATH (repeatable)",
    )
    g.add_argument(
        "--memory",
        type=positive_int,
        default=512,
        metavar="MIB",
        help="memory of one run, all its processes together where cgroups allow (default: 512)",
    )
    g.add_argument(
        "--uid-base",
        type=positive_int,
        default=60000,
        metavar="UID",
        help="where the grader runs as root, job k's programs run as uid and gid UID+k"
        " (default: 60000; two graders at once on one machine each need their own)",
    )
    g.add_argument(
        "--processes",
        type=positive_int,
        default=128,
        metavar="N",
        help="processes and threads of one run (default: 128)",
    )


def sandbox_policy(args: argparse.Namespace, prog: str) -> SandboxPolicy | int:
    """The policy the options ask for, ready to use (on Linux, this process made able to
    create namespaces); or an exit code after a one-line error (a required sandbox that
    cannot be made, a shared folder that is not one)."""
    from ..checker.sandbox import (
        AUTO,
        OFF,
        REQUIRE,
        SandboxLimits,
        SandboxPolicy,
        SandboxUnavailable,
        prepare,
        support,
    )

    for d in args.share:
        if not d.is_dir():
            return fail(prog, f"--share {d}: not a folder", EXIT_USAGE)
    mode = OFF if args.no_sandbox else REQUIRE if args.require_sandbox else AUTO
    limits = SandboxLimits(memory=args.memory << 20, processes=args.processes)
    if not 1000 <= args.uid_base <= 2**31 - 1000:
        return fail(prog, "--uid-base: not in 1000..2147482648", EXIT_USAGE)
    share = tuple(str(d.resolve()) for d in args.share)
    policy = SandboxPolicy(mode, limits, uid_base=args.uid_base, share=share)
    if mode != OFF:
        prepare()  # (another user than root: a user namespace, while single-threaded)
        try:
            support(policy)
        except SandboxUnavailable as e:
            return fail(prog, f"no sandbox can be made here: {e}", EXIT_USAGE)
    return policy
