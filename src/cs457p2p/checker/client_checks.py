"""``check client``: run someone else's client against trackers started here, one per
scenario (:mod:`.scenarios`), each with a fresh random secret message and shuffle, and
pass a scenario when the client's stdout holds the message and it exits within the
timeout."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.connection_rules import request_count
from ..core.database import Database
from ..core.requests import Request
from ..tracker.server import Address, Tracker, TrackerConfig
from .course_client import Place, course_run
from .guard import Guard
from .hints import client_hint, stopped_before_connecting
from .judges.hw08 import judge
from .judges.transcript import ProgramRun
from .report import CheckResult, Report, plural, short, short_text
from .runner import CommandError, CommandRun, run_command, substitute
from .sandbox import Jail, SandboxPolicy, contained
from .scenarios import Scenario, scenarios_for

__all__ = [
    "ClientCommandError",
    "check_client",
    "run_client_checks",
    "run_scenario",
    "secret_words",
]


class ClientCommandError(CommandError):
    """The client command cannot be run at all (not found, not executable, no
    ``{port}``): a usage error, not a failing client."""


# fmt: off
_ONSETS = (
    "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
    "br", "ch", "dr", "fl", "gr", "kl", "pl", "sh", "st", "th", "tr",
)
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ee", "oa", "oo", "ou")
# fmt: on
_CODAS = ["", "", "", "n", "r", "s", "t", "m", "k", "ng", "sh"]


def secret_words(rng: random.Random, count: int) -> list[str]:
    """``count`` random made-up words (lowercase ASCII, 1 to 3 syllables)."""
    return [
        "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(rng.randint(1, 3)))
        + rng.choice(_CODAS)
        for _ in range(count)
    ]


#: The hint of a program stopped by a limit of its sandbox.
LIMIT_HINT = (
    "the program hit a limit of its sandbox (the report's sandbox line says which):"
    " a client needs one process, little memory and no disk"
)


def _diagnose(stdout: str, db: Database, message: str) -> str:
    """Why ``stdout`` does not hold ``message``: the likeliest mistake."""
    if not stdout.strip():
        return "nothing on stdout"
    stored = " ".join(v for _, v in db.items)
    if stored in stdout:
        return "printed the values in position order, not in SEQNUM order"
    if message in " ".join(stdout.split()):
        return "printed the values, but not on one line joined by single spaces"
    words = sorted(message.split())
    for line in stdout.splitlines():
        if sorted(line.split()) == words:
            return "printed every value, but not in SEQNUM order"
    first = next(line for line in stdout.splitlines() if line.strip())
    return f"stdout does not hold the message (it starts {short(first, 70)})"


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return short_text(lines[-1].strip(), 120) if lines else ""


class _Tally:
    """Counts what a client sent to one of our trackers (its ``observer``)."""

    def __init__(self) -> None:
        self.requests = 0

    def observe(
        self,
        peer: Address,
        transport: str,
        requests: Sequence[Request],
        answers: int,
        bytes_in: int,
        bytes_out: int,
        latency: float,
    ) -> None:
        self.requests += request_count(requests)


async def run_scenario(
    scenario: Scenario,
    command: Sequence[str],
    transport: str,
    timeout: float,
    rng: random.Random,
    place: Place,
) -> CheckResult:
    message = " ".join(secret_words(rng, scenario.items))
    db = Database.from_message(message, shuffle_seed=rng.randrange(1 << 32))
    fault_seed = rng.randrange(1 << 32)
    course_problem: CheckResult | None = None
    run: CommandRun | ProgramRun
    if scenario.course:
        t = await course_run(scenario.name, command, db.items, timeout, place)
        run, port = t.run, int(t.address.rsplit(":", 1)[1])
        connections = len(t.connections)
        requests = sum(1 for c in t.connections if c.data)
        problems = [judge(n, t) for n in ("register", "pickled", "one-at-a-time")]
        course_problem = next((p for p in problems if not p.passed), None)
    else:
        tally = _Tally()
        faults = dataclasses.replace(scenario.faults, seed=fault_seed)
        config = TrackerConfig(host="127.0.0.1", port=0, faults=faults, drain_timeout=1.0)
        server = Tracker(db, config)
        server.observer = tally
        await server.start()
        port = server.port
        try:
            argv = substitute(command, {"host": "127.0.0.1", "port": port, "transport": transport})
            if place.log is not None:
                with place.log.open("a", encoding="utf-8") as f:
                    f.write(f"\n== scenario {scenario.name} ({scenario.items:,} items)\n")
            run = await run_command(argv, timeout, cwd=place.cwd, log=place.log, jail=place.jail)
        finally:
            await server.close()
        connections = server.accepted + server.datagrams
        requests = tally.requests
    found = message in run.stdout
    data: dict[str, Any] = {
        "items": scenario.items,
        "exit": run.exit,
        "seconds": round(run.seconds, 3),
        "timed_out": run.timed_out,
        "connections": connections,
        "requests": requests,
    }
    if scenario.faults.active:
        data["fault_seed"] = fault_seed
    if run.limit:
        data["limit"] = run.limit
    if run.setup_error:
        data["setup_error"] = run.setup_error
    if not connections:
        # (an empty message is in any stdout: the client must still have asked for it)
        passed = False
    elif scenario.items == 0:
        passed = not run.timed_out and run.exit == 0
    else:
        passed = not run.timed_out and found
    stderr = _last_line(run.stderr)
    if run.setup_error:
        passed, stderr = False, ""
    if passed:
        what = "exited 0 for N = 0" if scenario.items == 0 else "printed the message"
        what += f" ({scenario.items:,} items)" if scenario.items else ""
        detail = f"{what} in {run.seconds:.2f} s"
        if run.exit:
            detail += f" (exit {run.exit})"
        return CheckResult(scenario.name, True, True, detail, data)
    if not connections and run.exit in (126, 127) and not run.timed_out:
        # (the shell's and prlimit's word for a command not found or not executable)
        detail = f"the command could not be started (exit {run.exit})"
    elif not connections and not run.timed_out and stopped_before_connecting(run.stderr):
        detail = f"the program stopped before it connected (exit {run.exit})"
    elif not connections:
        reached = "sent a datagram to" if transport == "udp" else "connected to"
        detail = f"the client never {reached} 127.0.0.1:{port}: is the address hard-coded?"
        if run.timed_out:
            detail += f" (killed after {timeout:g} s)"
        elif run.exit:
            detail += f" (exit {run.exit})"
    elif run.timed_out:
        detail = (
            f"did not exit within {timeout:g} s (killed) after "
            f"{plural(connections, 'datagram' if transport == 'udp' else 'connection')}"
            f" and {plural(requests, 'request')}"
        )
        if found and scenario.items:
            detail += "; the message was on stdout"
    else:
        code = run.exit if run.exit is not None else -1
        detail = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        if scenario.items == 0:
            detail += " for N = 0"
    if run.setup_error:
        detail = f"the sandbox could not start it: {run.setup_error}"
    elif run.limit:
        detail = f"{run.limit}: {detail}"
    if not connections or run.setup_error:
        pass
    elif not found and scenario.items and message in run.stderr:
        detail += "; printed the message on stderr, not on stdout"
        stderr = ""
    elif not found and scenario.items:
        detail += f"; {_diagnose(run.stdout, db, message)}"
    if stderr:
        detail += f"; stderr: {stderr}"
    if course_problem is not None and connections:
        detail += f"; {course_problem.detail.split(': ', 1)[-1]}"
    result = CheckResult(scenario.name, True, False, detail, data)
    if run.limit:
        return result.with_hint(LIMIT_HINT)
    if course_problem is not None and connections:
        return result.with_hint(course_problem.hint)
    hint = client_hint(scenario.name, detail, requests=requests, needed=scenario.items + 1)
    return result.with_hint(hint)


async def run_client_checks(
    command: Sequence[str],
    *,
    transport: str = "tcp",
    timeout: float = 20.0,
    scenarios: Sequence[str] | None = None,
    seed: int | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
    sandbox: SandboxPolicy | None = None,
    slot: int = 0,
) -> Report:
    """Run the client ``command`` in every scenario for ``transport`` (or only the
    named ones). ``seed`` makes the secrets, shuffles and faults reproducible; ``cwd``
    is the folder it runs in (default: the current one), and ``log`` a file its output
    is appended to; ``sandbox``: how it is contained (:mod:`.sandbox`; by default in a
    sandbox where one can be made), as job ``slot``.
    Raises :class:`ClientCommandError` when the command cannot run at all."""
    if transport not in ("tcp", "udp"):
        raise ValueError("transport must be tcp or udp")
    if not command:
        raise ClientCommandError("missing COMMAND")
    if not any("{port}" in arg for arg in command):
        raise ClientCommandError(
            "COMMAND must contain {port} (and usually {host}): they are replaced by the"
            " address of each tracker this check starts"
        )
    rng = random.Random(seed)
    chosen = scenarios_for(transport, scenarios)

    async def body(jail: Jail | None) -> list[CheckResult]:
        guard = Guard.install()
        place = Place(cwd, log, jail)
        done = [await run_scenario(s, command, transport, timeout, rng, place) for s in chosen]
        load = guard.result()
        return [*done, load] if load else done

    checks, line = await contained(sandbox, cwd, body, slot)
    limit = next((str(c.data["limit"]) for c in checks if c.data.get("limit")), "")
    setup = next((str(c.data["setup_error"]) for c in checks if c.data.get("setup_error")), "")
    target = " ".join(command)
    return Report(
        "client", target, transport, tuple(checks), sandbox=line, limit=limit, setup_error=setup
    )


def check_client(
    command: Sequence[str],
    *,
    transport: str = "tcp",
    timeout: float = 20.0,
    scenarios: Sequence[str] | None = None,
    seed: int | None = None,
) -> Report:
    """:func:`run_client_checks` in a fresh event loop."""
    return asyncio.run(
        run_client_checks(
            command, transport=transport, timeout=timeout, scenarios=scenarios, seed=seed
        )
    )
