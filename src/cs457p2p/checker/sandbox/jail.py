"""Starting and ending one sandboxed run: :class:`Jail` (one student's folder, one job
slot) spawns ``bwrap`` with the view of :mod:`.view`, puts its first process in the
run's cgroup before the program starts, and at the end kills the sandbox (its pid
namespace and everything in it) and says what the run hit; :func:`contained` runs one
student's checks in a network namespace of their own with a jail."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ...waits import wait_for
from . import netns
from .cgroups import RunCgroup
from .policy import CommandError, SandboxPolicy, Support, support
from .view import MAX_FOLDER_FILES, bwrap_command, copyable, named_outside, system_folder

__all__ = ["Jail", "Spawned", "contained"]

T = TypeVar("T")


@dataclass
class Spawned:
    """A sandboxed run in progress: its outer ``bwrap`` process, its cgroup, and the
    pipe on which the sandbox says whether it started the program."""

    proc: asyncio.subprocess.Process
    cgroup: RunCgroup | None
    status: int  # read end of the status pipe
    _said: bytes = b""

    def said(self) -> str:
        """What the setup script wrote (``started``, or why it failed), read so far."""
        while True:
            try:
                chunk = os.read(self.status, 4096)
            except BlockingIOError:
                break
            except OSError:
                break
            if not chunk:
                break
            self._said += chunk[: max(0, 4096 - len(self._said))]
        return self._said.decode("utf-8", "replace").strip()


class Jail:
    """Runs a student's programs, one at a time, in sandboxes over one folder (the
    student's), as job slot ``slot`` (which sets the uid where the grader is root).
    Must be used from the thread of the student's network namespace."""

    def __init__(self, found: Support, folder: Path, policy: SandboxPolicy, slot: int = 0) -> None:
        assert found.active
        self.support = found
        self.folder = Path(os.path.realpath(folder))
        self.uid = policy.uid_base + slot if found.root else None
        self.share = [os.path.realpath(d) for d in policy.share]
        #: a private copy of the folder (else the folder itself, read-only: too big)
        self.copy = copyable(self.folder, found.limits)

    @property
    def line(self) -> str:
        """The sandbox's one line, for this folder."""
        if self.copy:
            return self.support.line
        limits = self.support.limits
        return (
            f"{self.support.line}; its folder {self.folder} read-only (over"
            f" {limits.disk >> 20} MiB or {MAX_FOLDER_FILES:,} files to copy)"
        )

    def command(
        self,
        argv: Sequence[str],
        status: int,
        fds: Sequence[int],
        env: Mapping[str, str] | None = None,
        files: Sequence[tuple[int, str]] = (),
    ) -> list[str]:
        """The ``bwrap`` command line that runs ``argv`` in the sandbox (:func:`bwrap_command`)."""
        found = self.support
        return bwrap_command(
            found.bwrap,
            found.limits,
            argv,
            folder=self.folder,
            copy=self.copy,
            root=found.root,
            cgroup=found.cgroup is not None,
            uid=self.uid,
            share=self.share,
            status=status,
            fds=fds,
            env=env,
            files=files,
        )

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        stdin: int,
        env: Mapping[str, str] | None = None,
    ) -> Spawned:
        """Start ``argv`` in a fresh sandbox; its stdout and stderr are pipes. Where a
        cgroup can be made, the sandbox waits (``--block-fd``) until its first process
        is in it."""
        limits = self.support.limits
        cgroup = None
        if self.support.cgroup is not None:
            with contextlib.suppress(OSError):
                cgroup = RunCgroup(self.support.cgroup, limits.memory, limits.processes)
        mine: list[int] = []  # (the ends this process keeps)
        theirs: list[int] = []  # (the ends the sandbox gets, closed here once it has them)
        try:
            status_r, status_w = os.pipe()
            mine.append(status_r)
            theirs.append(status_w)
            os.set_blocking(status_r, False)
            files = [(os.open(f, os.O_RDONLY), f) for f in named_outside(argv[1:], self.folder)[0]]
            theirs += [fd for fd, _ in files]
            block = []
            if cgroup is not None:
                info_r, info_w = os.pipe()
                block_r, block_w = os.pipe()
                mine += [info_r, block_w]
                theirs += [info_w, block_r]
                block = ["--info-fd", str(info_w), "--block-fd", str(block_r)]
            command = self.command(argv, status_w, theirs, env, files)
            command[1:1] = block
            proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=theirs,
                start_new_session=True,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
        except BaseException:
            for fd in mine:
                os.close(fd)
            if cgroup is not None:
                cgroup.remove()
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        if cgroup is not None:
            try:
                pid = await wait_for(asyncio.to_thread(_child_pid, info_r), 20)
                if pid is not None:
                    cgroup.add(pid)
            except (OSError, asyncio.TimeoutError):
                pass
            finally:
                with contextlib.suppress(OSError):
                    os.write(block_w, b"go")
                os.close(block_w)
                os.close(info_r)
        return Spawned(proc, cgroup, status_r)

    async def finish(self, spawned: Spawned) -> tuple[str, list[str], int]:
        """End the run: kill the sandbox (its whole pid namespace goes with it), wait for
        it, and say what the setup script said, the cgroup limits it hit, and how many
        processes were still running in it."""
        proc = spawned.proc
        left = 0
        if spawned.cgroup is not None:
            left = len(spawned.cgroup.pids())
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        hit: list[str] = []
        if spawned.cgroup is not None:
            spawned.cgroup.kill()
            hit = spawned.cgroup.hit()
        with contextlib.suppress(asyncio.TimeoutError):
            await wait_for(proc.wait(), 10)
        said = spawned.said()
        os.close(spawned.status)
        if spawned.cgroup is not None:
            for _ in range(100):
                if spawned.cgroup.remove():
                    break
                spawned.cgroup.kill()
                await asyncio.sleep(0.02)
        return said, hit, left


def _child_pid(fd: int) -> int | None:
    """The sandbox's first process, from bwrap's ``--info-fd`` (blocking read)."""
    data = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
        try:
            return int(json.loads(data)["child-pid"])
        except (ValueError, KeyError, TypeError):
            continue
    return None


async def contained(
    policy: SandboxPolicy | None,
    folder: Path | None,
    body: Callable[[Jail | None], Awaitable[T]],
    slot: int = 0,
) -> tuple[T, str]:
    """``body(jail)`` for one student's programs in ``folder`` (default: the current
    folder), and the sandbox's one line. Where a sandbox can be made, ``body`` runs in a
    network namespace of its own with a :class:`Jail` for that folder; otherwise with
    None (then the line says why). Raises :class:`SandboxUnavailable` when the policy
    requires a sandbox and none can be made."""
    found = support(policy or SandboxPolicy())
    if not found.active:
        return await body(None), found.line
    where = Path(folder) if folder is not None else Path.cwd()
    problem = system_folder(where)
    if problem is not None:
        raise CommandError(problem)
    jail = Jail(found, where, policy or SandboxPolicy(), slot)
    return await netns.isolated(lambda: body(jail)), jail.line
