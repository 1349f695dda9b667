"""The limits of one sandboxed run, and what its end says about the limits it hit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["SandboxLimits", "exit_code", "limit_hit"]


@dataclass(frozen=True)
class SandboxLimits:
    """What one run of a student's program may use. Memory and processes are for the
    whole run where a cgroup can be made, per process otherwise."""

    memory: int = 512 << 20  # bytes
    processes: int = 128  # tasks: processes and threads
    cpu_seconds: int = 120  # per process
    disk: int = 64 << 20  # bytes: its folder's copy (and each file it writes)
    tmp: int = 16 << 20  # bytes: /tmp
    open_files: int = 1024  # per process

    def words(self, cgroup: bool) -> str:
        scope = "per run" if cgroup else "per process"
        return (
            f"memory {self.memory >> 20} MiB and {self.processes} processes {scope},"
            f" {self.cpu_seconds} s of CPU and {self.open_files} open files per process,"
            f" disk {self.disk >> 20} MiB"
        )


def exit_code(code: int | None, sandboxed: bool) -> int | None:
    """A sandboxed program's exit code as a plain run's: bwrap says 128+N for a program
    killed by signal N; this says -N, as for any other child."""
    if sandboxed and code is not None and 128 < code < 128 + 32:
        return -(code - 128)
    return code


_SIGXCPU = 24
_SIGXFSZ = 25


def limit_hit(
    exit: int | None, stderr: str, cgroup_hits: Sequence[str], limits: SandboxLimits
) -> str:
    """Which limit a run hit, in words (``exceeded memory 512 MiB``), or ``""``: from
    the cgroup's counters, the signal that ended it, or what its runtime said on stderr
    when a limit refused it something."""
    said = stderr[-4096:]
    if "memory" in cgroup_hits:
        return f"exceeded memory {limits.memory >> 20} MiB"
    if "processes" in cgroup_hits:
        return f"exceeded {limits.processes} processes"
    if exit == -_SIGXCPU:
        return f"exceeded CPU time {limits.cpu_seconds} s"
    if exit == -_SIGXFSZ or "File too large" in said:
        return f"exceeded file size {limits.disk >> 20} MiB"
    if "No space left on device" in said:
        return f"exceeded disk {limits.disk >> 20} MiB"
    if "Too many open files" in said:
        return f"exceeded open files {limits.open_files}"
    if "MemoryError" in said or "Cannot allocate memory" in said:
        return f"exceeded memory {limits.memory >> 20} MiB"
    if "can't start new thread" in said or (
        "Resource temporarily unavailable" in said and ("fork" in said or "spawn" in said)
    ):
        return f"exceeded {limits.processes} processes"
    return ""
