"""What the checker recorded of one run of a student's program against a tracker it
played: plain data, built by the recording side, read by the judges."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ClientTranscript", "Connection", "ProgramRun"]


@dataclass(frozen=True)
class Connection:
    """One connection the played tracker accepted, as the course's tracker handles it
    (one read, one answer). Times are seconds from the program's start; ``read_at`` is
    None when nothing came before the run ended (it held the connection idle)."""

    at: float
    data: bytes = b""
    read_at: float | None = None
    reply: bytes | None = None


@dataclass(frozen=True)
class ProgramRun:
    """How the program ended: its exit code (None: killed at the timeout), its output,
    and the sandbox's word on it."""

    exit: int | None
    timed_out: bool
    seconds: float
    stdout: str
    stderr: str = ""
    limit: str = ""
    setup_error: str = ""


@dataclass(frozen=True)
class ClientTranscript:
    """A client's run against one played tracker: where it was (``address``), the
    database as stored (position 0 first), every connection in order, and the run."""

    scenario: str
    address: str
    stored: tuple[tuple[int, str], ...]
    connections: tuple[Connection, ...]
    run: ProgramRun
    timeout: float

    @property
    def message_values(self) -> list[str]:
        """The VALUEs in SEQNUM order."""
        return [v for _, v in sorted(self.stored)]
