"""The course's assignments as checking profiles (``--assignment``): what each one asks,
in the course's words, and the runs that judge it. Without a profile the checker judges
by this project's own, stricter rules ("does it also survive the real world").

* ``hw08`` (check/grade client): the client meets the course's tracker (the model of
  tracker-p1.py) at the course's address, with the course's database and with a fresh
  one; the rules of :mod:`.judges.hw08` are required, the robustness scenarios are INFO.
* ``hw09`` (check/grade peer) and ``p2`` (check/grade tracker --part 2): see
  :mod:`.peer_checks` and :mod:`.ring_tracker_checks` (which checks are required).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Sequence
from pathlib import Path

from ..core.course_model import COURSE_P1_DB
from ..core.database import Database
from .client_checks import ClientCommandError, run_scenario, secret_words
from .course_client import Place, course_run
from .guard import Guard
from .judges.hw08 import judge_hw08
from .judges.transcript import ClientTranscript
from .profiles import HW08_TIMEOUT
from .report import CheckResult, Report
from .sandbox import Jail, SandboxPolicy, contained, support
from .scenarios import scenarios_for

__all__ = ["HW08_ROBUSTNESS", "run_hw08"]

#: The robustness scenarios shown (INFO) under HW08: a client that pauses 2-3 s an item
#: cannot fetch large-db's 5,000 items in any reasonable time.
HW08_ROBUSTNESS = ("empty-db", "chunked-answers", "delayed-answers")
#: Items of the fresh database (as many as the course's).
FRESH_ITEMS = len(COURSE_P1_DB)


async def run_hw08(
    command: Sequence[str],
    *,
    timeout: float = HW08_TIMEOUT,
    seed: int | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
    sandbox: SandboxPolicy | None = None,
    slot: int = 0,
) -> Report:
    """HW08's checks of the client ``command``: its runs against the course's tracker
    (the course's database, then a fresh one, so that a printed answer must come from
    the tracker) and the robustness scenarios, each in a sandbox and a network of its
    own where one can be made (then all at once: a pausing client mostly sleeps)."""
    if not command:
        raise ClientCommandError("missing COMMAND")
    rng = random.Random(seed)
    fresh = Database.from_message(
        " ".join(secret_words(rng, FRESH_ITEMS)), shuffle_seed=rng.randrange(1 << 32)
    )
    runs: list[tuple[str, Sequence[tuple[int, str]]]] = [
        ("course-db", COURSE_P1_DB),
        ("fresh-db", fresh.items),
    ]
    robust = scenarios_for("tcp", HW08_ROBUSTNESS)
    seeds = [rng.randrange(1 << 32) for _ in robust]

    lines: list[str] = []

    async def course(name: str, stored: Sequence[tuple[int, str]]) -> ClientTranscript:
        async def body(jail: Jail | None) -> ClientTranscript:
            Guard.install()
            return await course_run(name, command, stored, timeout, Place(cwd, log, jail))

        transcript, line = await contained(sandbox, cwd, body, slot)
        lines.append(line)
        return transcript

    async def robustness(k: int) -> CheckResult:
        async def body(jail: Jail | None) -> CheckResult:
            Guard.install()
            place = Place(cwd, log, jail)
            run_rng = random.Random(seeds[k])
            return await run_scenario(robust[k], command, "tcp", timeout, run_rng, place)

        result = (await contained(sandbox, cwd, body, slot))[0]
        return dataclasses.replace(result, required=False)

    jobs = [course(n, s) for n, s in runs]
    extra = [robustness(k) for k in range(len(robust))]
    if support(sandbox or SandboxPolicy()).active:  # (all at once, each in its network)
        done = await asyncio.gather(asyncio.gather(*jobs), asyncio.gather(*extra))
        transcripts, rows = list(done[0]), list(done[1])
    else:  # (one network for all: one run at a time, each tracker on its own port)
        transcripts = [await j for j in jobs]
        rows = [await e for e in extra]
    large = CheckResult(
        "large-db",
        False,
        False,
        "not run under --assignment hw08: 5,000 items at the assignment's 2-3 s each would"
        " take hours",
    )
    checks = [*judge_hw08(transcripts), *rows, large]
    line = lines[0] if lines else support(sandbox or SandboxPolicy()).line
    limit = next((t.run.limit for t in transcripts if t.run.limit), "")
    setup = next((t.run.setup_error for t in transcripts if t.run.setup_error), "")
    return Report(
        "client",
        " ".join(command),
        "tcp",
        tuple(checks),
        sandbox=line,
        limit=limit,
        setup_error=setup,
        assignment="hw08",
    )
