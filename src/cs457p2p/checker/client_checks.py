"""``check client``: run someone else's client against trackers started here, one per
scenario (:mod:`.scenarios`), each with a fresh random secret message and shuffle, and
pass a scenario when the client's stdout holds the message and it exits within the
timeout."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import shlex
from collections.abc import Sequence
from typing import Any

from ..core.database import Database
from ..tracker.server import Tracker, TrackerConfig
from .refstyle import ReferenceStyleTracker
from .report import CheckResult, Report, short, short_text
from .runner import CommandError, run_command, substitute
from .scenarios import Scenario, scenarios_for

__all__ = ["ClientCommandError", "check_client", "run_client_checks", "secret_words"]


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


async def _run_scenario(
    scenario: Scenario,
    command: Sequence[str],
    transport: str,
    timeout: float,
    rng: random.Random,
) -> CheckResult:
    message = " ".join(secret_words(rng, scenario.items))
    db = Database.from_message(message, shuffle_seed=rng.randrange(1 << 32))
    fault_seed = rng.randrange(1 << 32)
    server: Tracker | ReferenceStyleTracker
    if scenario.reference_style:
        server = ReferenceStyleTracker(db, timeout=timeout)
        await server.start()
        port = server.port
    else:
        faults = dataclasses.replace(scenario.faults, seed=fault_seed)
        config = TrackerConfig(host="127.0.0.1", port=0, faults=faults, drain_timeout=1.0)
        server = Tracker(db, config)
        await server.start()
        port = server.port
    try:
        argv = substitute(command, {"host": "127.0.0.1", "port": port, "transport": transport})
        run = await run_command(argv, timeout)
    finally:
        await server.close()
    found = message in run.stdout
    data: dict[str, Any] = {
        "items": scenario.items,
        "exit": run.exit,
        "seconds": round(run.seconds, 3),
        "timed_out": run.timed_out,
    }
    if scenario.faults.active:
        data["fault_seed"] = fault_seed
    if scenario.items == 0:
        # The empty message is in any stdout: here the client must not crash.
        passed = not run.timed_out and run.exit == 0
    else:
        passed = not run.timed_out and found
    stderr = _last_line(run.stderr)
    if passed:
        what = "exited 0 for N = 0" if scenario.items == 0 else "printed the message"
        what += f" ({scenario.items:,} items)" if scenario.items else ""
        detail = f"{what} in {run.seconds:.2f} s"
        if run.exit:
            detail += f" (exit {run.exit})"
        return CheckResult(scenario.name, True, True, detail, data)
    if run.timed_out:
        detail = f"did not exit within {timeout:g} s (killed)"
        if found and scenario.items:
            detail += "; the message was on stdout"
    else:
        code = run.exit if run.exit is not None else -1
        detail = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        if scenario.items == 0:
            detail += " for N = 0"
    if not found and scenario.items and message in run.stderr:
        detail += "; printed the message on stderr, not on stdout"
        stderr = ""
    elif not found and scenario.items:
        detail += f"; {_diagnose(run.stdout, db, message)}"
    if stderr:
        detail += f"; stderr: {stderr}"
    return CheckResult(scenario.name, True, False, detail, data)


async def run_client_checks(
    command: Sequence[str],
    *,
    transport: str = "tcp",
    timeout: float = 20.0,
    scenarios: Sequence[str] | None = None,
    seed: int | None = None,
) -> Report:
    """Run the client ``command`` in every scenario for ``transport`` (or only the
    named ones). ``seed`` makes the secrets, shuffles and faults reproducible.
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
    checks = [
        await _run_scenario(s, command, transport, timeout, rng)
        for s in scenarios_for(transport, scenarios)
    ]
    return Report("client", shlex.join(command), transport, tuple(checks))


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
