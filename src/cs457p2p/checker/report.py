"""The checker's reports: one :class:`CheckResult` per named check, and the
:class:`Report` of a run, as a table or as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..core.decoder import Value, describe

__all__ = ["CheckResult", "Report", "one_line", "plural", "short", "short_text"]


@dataclass(frozen=True)
class CheckResult:
    """One line of a report. ``passed`` of an informational check says whether the
    tracker has the feature (or the measurement was made); it never fails a report."""

    name: str
    required: bool
    passed: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

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
            "data": self.data,
        }


@dataclass(frozen=True)
class Report:
    """The checks of one run, in order, and what they were run against."""

    kind: str  # "tracker" or "client"
    target: str  # HOST:PORT, or the client's command line
    transport: str
    checks: tuple[CheckResult, ...]
    #: the tracker's assembled message (check tracker), when it could be assembled
    message: str | None = None

    @property
    def required(self) -> list[CheckResult]:
        return [c for c in self.checks if c.required]

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.required if not c.passed]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary(self) -> str:
        required = self.required
        passed = sum(c.passed for c in required)
        line = f"{self.kind} {self.target}: {passed}/{len(required)} required checks passed"
        if self.failed:
            line += f" (failed: {', '.join(self.failed)})"
        return line

    def table(self) -> str:
        """The checks as an aligned table, then the summary line."""
        rows = [("check", "result", "detail")]
        rows += [(c.name, c.result, one_line(c.detail)) for c in self.checks]
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        lines = [f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in rows]
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
                "line": self.summary(),
            },
            "message": self.message,
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
    return f"{k} {word}" if k == 1 else f"{k} {word}s"
