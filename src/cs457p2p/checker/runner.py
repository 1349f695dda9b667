"""Running someone else's program under the checker: no shell, its own process group,
stdin closed, stdout and stderr captured up to a cap, and the whole group killed at the
timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["STDERR_CAP", "STDOUT_CAP", "CommandError", "CommandRun", "run_command", "substitute"]

#: Bytes of a program's stdout (and stderr) kept; the rest is read and dropped.
STDOUT_CAP = 8 << 20
STDERR_CAP = 64 << 10


class CommandError(Exception):
    """The command cannot be run at all (not found, not executable...): a usage error,
    not a failing program."""


class _Capture:
    """Reads a pipe to its end, keeping the first ``cap`` bytes (what was read so far
    survives a cancellation)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.truncated = False

    async def run(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while True:
            chunk = await stream.read(1 << 16)
            if not chunk:
                return
            room = self.cap - len(self.data)
            if room < len(chunk):
                self.truncated = True
            if room > 0:
                self.data += chunk[:room]


@dataclass
class CommandRun:
    exit: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_command(argv: Sequence[str], timeout: float) -> CommandRun:
    """Run ``argv`` (no shell) in a process group of its own; kill the whole group when
    it has not exited within ``timeout`` seconds (and anything it left behind)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as e:
        raise CommandError(f"cannot run {argv[0]!r}: {e.strerror or e}") from None
    out, err = _Capture(STDOUT_CAP), _Capture(STDERR_CAP)
    readers = [
        asyncio.ensure_future(out.run(proc.stdout)),
        asyncio.ensure_future(err.run(proc.stderr)),
    ]
    timed_out = False
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except asyncio.TimeoutError:
        timed_out = True
    finally:
        _kill_group(proc.pid)
        if proc.returncode is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 5.0)
        seconds = loop.time() - start
        # the pipes end when the last process holding them is gone
        _, pending = await asyncio.wait(readers, timeout=1.0)
        for t in pending:
            t.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return CommandRun(
        None if timed_out else proc.returncode,
        out.data.decode("utf-8", "replace"),
        err.data.decode("utf-8", "replace"),
        seconds,
        timed_out,
    )


def substitute(command: Sequence[str], host: str, port: int, transport: str) -> list[str]:
    """``{host}``, ``{port}`` and ``{transport}`` replaced in every argument."""
    out = []
    for arg in command:
        arg = arg.replace("{host}", host).replace("{port}", str(port))
        out.append(arg.replace("{transport}", transport))
    return out
