"""What a sandbox may use and whether one can be made here: the limits of one run, the
policy (``auto``, ``require``, ``off``), and the machine's :class:`Support`, probed once
(Linux, ``bwrap`` and its helpers, a network namespace, a trial run, cgroups); and what
a run's end says about the limits it hit."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

from . import netns
from .cgroups import CgroupKind, detect
from .limits import SandboxLimits
from .view import BWRAP_FLAGS, system_view

__all__ = [
    "AUTO",
    "OFF",
    "REQUIRE",
    "CommandError",
    "SandboxPolicy",
    "SandboxUnavailable",
    "Support",
    "support",
]

AUTO, REQUIRE, OFF = "auto", "require", "off"


class CommandError(Exception):
    """The command cannot be run at all (not found, not executable, a folder no sandbox
    can take...): a usage error, not a failing program."""


class SandboxUnavailable(Exception):
    """A sandbox was required and cannot be made here (a usage error: one line)."""


@dataclass(frozen=True)
class SandboxPolicy:
    """Whether students' programs run sandboxed: ``auto`` (when possible; said when
    not), ``require`` (an error when not possible) or ``off``."""

    mode: str = AUTO
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    #: where the grader runs as root, the uid (and gid) of job slot k is uid_base + k
    uid_base: int = 60000
    #: folders every program may read (a course's library), at their own paths and on
    #: its PYTHONPATH
    share: tuple[str, ...] = ()


@dataclass(frozen=True)
class Support:
    """What this machine allows: ``active`` when runs are sandboxed, and one line that
    says how (``sandbox: ...``) or why not (``no sandbox: ...``)."""

    active: bool
    line: str
    cgroup: CgroupKind | None = None
    root: bool = False
    bwrap: str = ""
    limits: SandboxLimits = field(default_factory=SandboxLimits)


def _trial(bwrap: str, root: bool) -> str | None:
    """Run ``true`` in a sandbox like a student's; None if it worked, else why not."""
    user = [] if root else ["--unshare-user", "--disable-userns"]
    argv = [bwrap, *BWRAP_FLAGS, *user, *system_view(), "--", "true"]
    try:
        done = subprocess.run(  # noqa: S603 (bwrap, our own arguments)
            argv, capture_output=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bwrap did not run: {e}"
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bwrap failed: {lines[-1] if lines else f'exit {done.returncode}'}"
    return None


def _version(bwrap: str) -> str:
    try:
        out = subprocess.run(  # noqa: S603 (bwrap --version)
            [bwrap, "--version"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "bubblewrap"
    return out.stdout.decode("utf-8", "replace").strip() or "bubblewrap"


@functools.lru_cache(maxsize=4)
def _probe(limits: SandboxLimits, uid_base: int) -> Support:
    fallback = "students' programs run unsandboxed (own session, rlimits, tree killed)"
    if not sys.platform.startswith("linux"):
        return Support(False, f"no sandbox: not Linux; {fallback}")
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Support(
            False,
            f"no sandbox: bubblewrap is not installed (apt-get install bubblewrap); {fallback}",
        )
    root = netns.initial_root()
    tools = ("prlimit", "cp", "bash", *(["setpriv"] if root else []))
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        return Support(False, f"no sandbox: {', '.join(missing)} not found; {fallback}")
    why = netns.unavailable() or _trial(bwrap, root)
    if why is not None:
        return Support(False, f"no sandbox: {why}; {fallback}")
    kind = detect()
    cgroup = kind if isinstance(kind, CgroupKind) else None
    uid = 65534 if os.geteuid() == 0 else os.getuid()  # (root of a user namespace: 65534)
    who = f"uid {uid_base}+" if root else f"uid {uid} (in a user namespace)"
    line = (
        f"sandbox: {_version(bwrap)}; own network, pid and mount namespaces; {who};"
        f" {limits.words(cgroup is not None)}"
        + (f" ({cgroup.name})" if cgroup else f" (rlimits: {kind})")
    )
    return Support(True, line, cgroup, root, bwrap, limits)


def support(policy: SandboxPolicy) -> Support:
    """What ``policy`` gives on this machine (probed once per process). Raises
    :class:`SandboxUnavailable` when it requires a sandbox and none can be made."""
    if policy.mode == OFF:
        return Support(False, "no sandbox: turned off (--no-sandbox)")
    found = _probe(policy.limits, policy.uid_base)
    if not found.active and policy.mode == REQUIRE:
        raise SandboxUnavailable(found.line.removeprefix("no sandbox: ").split(";")[0])
    return found
