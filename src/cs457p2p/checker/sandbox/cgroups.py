"""Run-wide limits for one sandboxed run, from the kernel's control groups: memory (the
whole run's, tmpfs writes included) and tasks (processes and threads), and what the run
hit when it ends.

Two kinds of hierarchy are found and used, both needing write access to the
grader's own cgroup (root, or a delegated subtree):

* **cgroup v2** (``/sys/fs/cgroup`` a ``cgroup2`` mount with the ``memory`` and ``pids``
  controllers enabled for children of this process's cgroup): one cgroup per run with
  ``memory.max``, ``memory.swap.max`` and ``pids.max``; ``cgroup.kill`` ends it;
* **cgroup v1** (separate ``memory`` and ``pids`` hierarchies): one cgroup per run in
  each, under this process's own, with ``memory.limit_in_bytes`` (and
  ``memory.memsw.limit_in_bytes`` where swap is accounted) and ``pids.max``.

Where neither can be written, :func:`detect` says why and the sandbox falls back to
per-process rlimits. A run's cgroup is made before its program's first instruction:
the sandbox's first process is put in it while it waits, and everything it starts
inherits it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CgroupKind", "RunCgroup", "detect"]

_ROOT = Path("/sys/fs/cgroup")
_PREFIX = "cs457p2p-run-"


@dataclass(frozen=True)
class CgroupKind:
    """Where runs' cgroups are made: ``version`` 1 or 2, and the parent folder of each
    controller (v2: one folder for both)."""

    version: int
    memory: Path
    pids: Path

    @property
    def name(self) -> str:
        return f"cgroup v{self.version}"


def _own_paths() -> dict[str, str]:
    """This process's cgroup per controller (``""``: the v2 one), from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                paths[c] = path
    return paths


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def _v2() -> CgroupKind | str:
    if not (_ROOT / "cgroup.controllers").is_file():
        return "no cgroup v2 hierarchy at /sys/fs/cgroup"
    own = _ROOT / _own_paths().get("", "/").lstrip("/")
    try:
        enabled = (own / "cgroup.subtree_control").read_text().split()
    except OSError as e:
        return f"cannot read {own}/cgroup.subtree_control: {e.strerror}"
    missing = [c for c in ("memory", "pids") if c not in enabled]
    if missing:
        return f"cgroup v2: {' and '.join(missing)} not delegated to {own}"
    if not _writable_dir(own):
        return f"cgroup v2: {own} is not writable"
    return CgroupKind(2, own, own)


def _v1() -> CgroupKind | str:
    own = _own_paths()
    parents = {}
    for controller in ("memory", "pids"):
        if controller not in own:
            return f"no cgroup v1 {controller} controller"
        parent = _ROOT / controller / own[controller].lstrip("/")
        if not _writable_dir(parent):
            return f"cgroup v1: {parent} is not writable (run as root)"
        parents[controller] = parent
    return CgroupKind(1, parents["memory"], parents["pids"])


def detect() -> CgroupKind | str:
    """Where runs' cgroups can be made, or why they cannot (one line)."""
    found = _v2()
    if isinstance(found, CgroupKind):
        return found
    old = _v1()
    if isinstance(old, CgroupKind):
        return old
    return found if "hierarchy" not in found else old


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _field(text: str, key: str) -> int:
    """The number after ``key`` in a flat-keyed file (``memory.events``, ``pids.events``)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1])
    return 0


class RunCgroup:
    """The cgroup(s) of one run: made with its limits, given the run's first process,
    read for what was hit, then emptied and removed."""

    def __init__(self, kind: CgroupKind, memory: int, tasks: int) -> None:
        self.kind = kind
        self.memory = memory
        self.tasks = tasks
        name = _PREFIX + secrets.token_hex(6)
        self.dirs = (
            [kind.memory / name]
            if kind.version == 2
            else [
                kind.memory / name,
                kind.pids / name,
            ]
        )
        made: list[Path] = []
        try:
            for d in self.dirs:
                d.mkdir()
                made.append(d)
            self._limit()
        except OSError:
            for d in reversed(made):
                with contextlib.suppress(OSError):
                    d.rmdir()
            raise

    @property
    def _mem(self) -> Path:
        return self.dirs[0]

    @property
    def _pids(self) -> Path:
        return self.dirs[-1]

    def _limit(self) -> None:
        if self.kind.version == 2:
            _write(self._mem / "memory.max", str(self.memory))
            with contextlib.suppress(OSError):  # (no swap accounting: nothing to cap)
                _write(self._mem / "memory.swap.max", "0")
        else:
            _write(self._mem / "memory.limit_in_bytes", str(self.memory))
            with contextlib.suppress(OSError):
                _write(self._mem / "memory.memsw.limit_in_bytes", str(self.memory))
        _write(self._pids / "pids.max", str(self.tasks))

    def add(self, pid: int) -> None:
        """Put ``pid`` (and so everything it starts from now on) in the run's cgroups."""
        for d in self.dirs:
            _write(d / "cgroup.procs", str(pid))

    def hit(self) -> list[str]:
        """The limits the run reached: ``memory``, ``processes``."""
        hit = []
        if self.kind.version == 2:
            events = _read(self._mem / "memory.events")
            if _field(events, "oom_kill") or _field(events, "max"):
                hit.append("memory")
        else:
            oom = _read(self._mem / "memory.oom_control")
            failcnt = _read(self._mem / "memory.failcnt").strip()
            if _field(oom, "oom_kill") or (failcnt.isdigit() and int(failcnt) > 0):
                hit.append("memory")
        if _field(_read(self._pids / "pids.events"), "max"):
            hit.append("processes")
        return hit

    def pids(self) -> list[int]:
        found: set[int] = set()
        for d in self.dirs:
            found.update(int(p) for p in _read(d / "cgroup.procs").split() if p.isdigit())
        return sorted(found)

    def kill(self) -> None:
        """SIGKILL everything left in the run's cgroups."""
        if self.kind.version == 2:
            with contextlib.suppress(OSError):
                _write(self._mem / "cgroup.kill", "1")
                return
        for _ in range(20):
            left = self.pids()
            if not left:
                return
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    def remove(self) -> bool:
        """Remove the run's cgroups (possible once its processes are gone and reaped).
        True when none is left."""
        for d in self.dirs:
            with contextlib.suppress(FileNotFoundError):
                try:
                    d.rmdir()
                except OSError:
                    return False
        return True
