"""The checker's reports: one :class:`CheckResult` per named check, and the
:class:`Report` of a run, as a table or as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..core.decoder import Value, describe
from ..core.wire2 import BadMessage, Message, message_tuple

__all__ = [
    "NOT_GRADED",
    "CheckResult",
    "Report",
    "one_line",
    "plural",
    "short",
    "short_text",
    "shown",
]


@dataclass(frozen=True, repr=False)
class CheckResult:
    """One line of a report. ``passed`` of an informational check says whether the
    tracker has the feature (or the measurement was made); it never fails a report.
    ``hint``: what to fix, in the student's terms (every failed check has one);
    ``warning``: something worth a look that does not fail the check."""

    name: str
    required: bool
    passed: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)
    hint: str = ""
    warning: str = ""

    @property
    def not_run(self) -> bool:
        """A check that could not run (a check before it failed, the deadline passed):
        reported as failed when required, but counted apart from real failures."""
        return not self.passed and self.detail.startswith("not run:")

    @property
    def result(self) -> str:
        if not self.required:
            return "INFO"
        return "PASS" if self.passed else "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "required": self.required,
            "passed": self.passed,
            "result": self.result,
            "detail": self.detail,
            "hint": self.hint,
            "warning": self.warning,
            "data": self.data,
        }

    def __repr__(self) -> str:
        # (short: a detail can hold a whole message of megabytes, and asyncio builds the
        # repr of a task's result, in full, on its way out of asyncio.run)
        return f"CheckResult({self.name!r}, {self.result}, {short_text(self.detail, 60)!r})"

    def with_hint(self, hint: str) -> CheckResult:
        return CheckResult(
            self.name, self.required, self.passed, self.detail, self.data, hint, self.warning
        )


#: What a table says under its INFO rows.
NOT_GRADED = "INFO rows are not graded: they say what the program does beyond what is required."


@dataclass(frozen=True, repr=False)
class Report:
    """The checks of one run, in order, and what they were run against."""

    kind: str  # "tracker" or "client"
    target: str  # HOST:PORT, or the client's command line
    transport: str
    checks: tuple[CheckResult, ...]
    #: the tracker's assembled message (check tracker), when it could be assembled
    message: str | None = None
    #: one line that says why nothing could be checked (then only the first check is
    #: shown in the table; the others are reported as not run)
    stopped: str = ""
    #: how the program checked was contained (``sandbox: ...`` or ``no sandbox: ...``;
    #: "" when the checker ran no program)
    sandbox: str = ""
    #: a limit of the sandbox the program hit (``exceeded memory 512 MiB``), or ""
    limit: str = ""
    #: why the sandbox could not start the program (it never ran), or ""
    setup_error: str = ""
    #: the course's assignment judged (``hw08``...; "": this project's own checks)
    assignment: str = ""

    def __repr__(self) -> str:  # (short, as CheckResult's)
        return f"Report({self.kind!r}, {short_text(self.target, 60)!r}, {self.summary()!r})"

    @property
    def required(self) -> list[CheckResult]:
        return [c for c in self.checks if c.required]

    @property
    def failed(self) -> list[str]:
        """The required checks that ran and failed."""
        return [c.name for c in self.required if not c.passed and not c.not_run]

    @property
    def not_run(self) -> list[str]:
        """The required checks that could not run (each counts as not passed)."""
        return [c.name for c in self.required if c.not_run]

    @property
    def ok(self) -> bool:
        return all(c.passed for c in self.required)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary(self) -> str:
        required = self.required
        passed = sum(c.passed for c in required)
        line = f"{self.kind} {self.target}: {passed}/{len(required)} required checks passed"
        parts = [f"failed: {', '.join(self.failed)}"] if self.failed else []
        if self.not_run:
            parts.append(f"{len(self.not_run)} not run: {', '.join(self.not_run)}")
        return f"{line} ({'; '.join(parts)})" if parts else line

    def table(self) -> str:
        """The checks as an aligned table (a failed check's hint on the line below it,
        a warning too), then the summary line."""
        shown = self.checks[:1] if self.stopped else self.checks
        rows = [("check", "result", "detail")]
        rows += [(c.name, c.result, one_line(c.detail)) for c in shown]
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        lines = [f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in rows[:1]]
        pad = " " * (w0 + w1 + 4)
        for check, (a, b, c) in zip(shown, rows[1:], strict=True):
            lines.append(f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip())
            if check.warning:
                lines.append(f"{pad}warning: {one_line(check.warning)}")
            if check.hint and not check.passed:
                lines.append(f"{pad}hint: {one_line(check.hint)}")
        if self.stopped and len(self.checks) > 1:
            lines.append(f"({plural(len(self.checks) - 1, 'other check')} not run: {self.stopped})")
        if any(not c.required for c in shown):
            lines.append(NOT_GRADED)
        if self.sandbox:
            lines.append(self.sandbox)
        return "\n".join([*lines, self.summary()])

    def to_json(self) -> dict[str, Any]:
        required = self.required
        return {
            "kind": self.kind,
            "target": self.target,
            "transport": self.transport,
            "ok": self.ok,
            "checks": [c.to_json() for c in self.checks],
            "summary": {
                "required": len(required),
                "passed": sum(c.passed for c in required),
                "failed": self.failed,
                "not_run": self.not_run,
                "line": self.summary(),
            },
            "message": self.message,
            "stopped": self.stopped,
            "sandbox": self.sandbox,
            "limit": self.limit,
            "setup_error": self.setup_error,
            "assignment": self.assignment,
        }

    def json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False)


def one_line(text: str) -> str:
    return " ".join(text.split("\n"))


def short(value: Value, limit: int = 60) -> str:
    """A value (or bytes received) in a report line: its repr, cut to ``limit``
    characters, never built in full."""
    return describe(value, limit)


def short_text(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plural(k: int, word: str) -> str:
    return f"{k:,} {word}" if k == 1 else f"{k:,} {word}s"


def shown(got: Message | BadMessage | str) -> str:
    """What came back, for a report line: a message as its tuple, cut; a value that is
    no message with why; or the words of what happened instead (a str)."""
    if isinstance(got, str):
        return got
    if isinstance(got, BadMessage):
        return f"a value that is no Part 2 message ({got.reason})"
    return short(message_tuple(got), 80)
