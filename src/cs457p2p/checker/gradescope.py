"""Gradescope's results format (``results.json``, as its autograder documentation
gives it: a score, and one test per check with its own score, max_score, status,
output and visibility), made from a report and a rubric."""

from __future__ import annotations

from typing import Any

from .report import Report, one_line
from .rubric import Rubric

__all__ = ["results"]


def results(report: Report, rubric: Rubric) -> dict[str, Any]:
    """Gradescope's results for ``report``: every check a test (the rubric's points for
    it; a check worth nothing is shown for what it says), the hint in its output."""
    tests = []
    for c in report.checks:
        worth = rubric.worth(c.name)
        output = one_line(c.detail)
        if c.hint and not c.passed:
            output += f"\nhint: {one_line(c.hint)}"
        if c.warning:
            output += f"\nwarning: {one_line(c.warning)}"
        test: dict[str, Any] = {
            "name": c.name + ("" if c.required else " (INFO)"),
            "status": "passed" if c.passed else "failed",
            "output": output,
            "visibility": "visible",
        }
        if worth or c.required:
            test["score"] = worth if c.passed else 0.0
            test["max_score"] = worth
        tests.append(test)
    lines = [report.summary()]
    if report.sandbox:
        lines.append(report.sandbox)
    return {
        "score": rubric.score(report),
        "max_score": rubric.total,
        "output": "\n".join(lines),
        "visibility": "visible",
        "stdout_visibility": "visible",
        "tests": tests,
    }
