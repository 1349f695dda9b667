"""Points for checks: a rubric (``--rubric FILE``, TOML) says how many points each named
check is worth; a report's score is the points of the checks it passed. Without a file,
each ``--assignment`` has its default rubric (100 points, below), and this project's own
checks are worth one point each.

A rubric file::

    # points per check, by the check names of the report
    [points]
    register = 10
    pause = 15
    prints-in-order = 25

Checks the file does not name are worth nothing; a name that is no check of the kind
being graded is an error (a typo would otherwise give points to nothing).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .report import Report

__all__ = ["DEFAULT_RUBRICS", "Rubric", "RubricError", "default_rubric", "load_rubric"]

#: The course's assignments' default rubrics (100 points each).
DEFAULT_RUBRICS: dict[str, dict[str, float]] = {
    "hw08": {
        "register": 10, "pickled": 15, "all-items": 15, "pause": 15, "one-at-a-time": 10,
        "prints-in-order": 25, "exits": 10,
    },
    "hw09": {
        "register": 10, "ping": 10, "query": 15, "follows-update": 15, "collects": 20,
        "keeps-serving": 10, "pause": 10, "py2-pickles": 10,
    },
}  # fmt: skip


class RubricError(Exception):
    """A rubric file that cannot be used (one line)."""


@dataclass(frozen=True)
class Rubric:
    """Points per check name, and where they come from (a file, or a default)."""

    points: Mapping[str, float]
    source: str

    @property
    def total(self) -> float:
        return float(sum(self.points.values()))

    def score(self, report: Report | None) -> float:
        """The points of the checks ``report`` passed (0 without a report)."""
        if report is None:
            return 0.0
        return float(sum(self.points.get(c.name, 0) for c in report.checks if c.passed))

    def worth(self, name: str) -> float:
        return float(self.points.get(name, 0))


def default_rubric(assignment: str, required: Sequence[str]) -> Rubric:
    """The assignment's default, else one point per required check."""
    if assignment in DEFAULT_RUBRICS:
        return Rubric(DEFAULT_RUBRICS[assignment], f"the default rubric of {assignment}")
    return Rubric({name: 1 for name in required}, "one point per required check")


def load_rubric(path: Path, known: Sequence[str]) -> Rubric:
    """The rubric in the TOML file ``path``; ``known``: the check names it may use."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover (Python 3.10)
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise RubricError(f"{path}: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise RubricError(f"{path}: not TOML ({e})") from None
    points = data.get("points")
    if not isinstance(points, dict) or not points:
        raise RubricError(f"{path}: no [points] table (check = points, one a line)")
    unknown = sorted(set(points) - set(known))
    if unknown:
        raise RubricError(
            f"{path}: {unknown[0]!r} is no check here; the checks are {', '.join(known)}"
        )
    for name, value in points.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise RubricError(f"{path}: {name} = {value!r}: points are a number, 0 or more")
    return Rubric({k: float(v) for k, v in points.items()}, str(path))
