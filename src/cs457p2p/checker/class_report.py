"""A class's grades on disk: ``grades.csv`` and ``grades.json``, written by the grader
alone (outside every sandbox), again as each student is graded, so that a crash or a
Ctrl-C leaves every row done so far (the others say ``not-graded``). Each write goes to
a temporary file that then replaces the old one: a reader never sees half a file."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

from .grade import OUTCOMES, Grade, GradeOptions, log_of

__all__ = ["FIELDS", "ClassReport", "csv_text", "json_text"]

FIELDS = (
    "student",
    "outcome",
    "passed",
    "required",
    "failed",
    "hint",
    "detail",
    "warnings",
    "log",
    "sandbox",
)


def csv_text(grades: Sequence[Grade]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for g in grades:
        writer.writerow(g.row())
    return out.getvalue()


def json_text(grades: Sequence[Grade], opts: GradeOptions) -> str:
    counts = {k: sum(g.outcome == k for g in grades) for k in OUTCOMES}
    return json.dumps(
        {
            "kind": opts.kind,
            "part": 2 if opts.kind == "peer" else opts.part,
            "command": " ".join(opts.command),
            "transport": opts.transport,
            "students": len(grades),
            "outcomes": {k: v for k, v in counts.items() if v},
            "grades": [g.to_json() for g in grades],
        },
        indent=2,
        ensure_ascii=False,
    )


def _replace(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


class ClassReport:
    """The CSV and JSON of one grading run over ``students`` (their folders' names, in
    order): :meth:`add` a grade and both files are written again."""

    def __init__(
        self, students: Sequence[str], opts: GradeOptions, csv_path: Path, json_path: Path
    ) -> None:
        self.opts = opts
        self.csv_path = csv_path
        self.json_path = json_path
        self.grades: dict[str, Grade] = {}
        self.students = list(students)

    def rows(self) -> list[Grade]:
        """Every student's grade, in order; ``not-graded`` for those not graded yet."""
        return [self.grades.get(s) or self._not_graded(s) for s in self.students]

    def _not_graded(self, student: str) -> Grade:
        return Grade(
            student,
            "not-graded",
            0,
            0,
            [],
            "grade again with --only " + student,
            "the grading stopped before this student",
            log_of(self.opts, student),
        )

    def add(self, grade: Grade) -> None:
        self.grades[grade.student] = grade
        self.write()

    def write(self) -> None:
        """Both files as they stand (OSError if they cannot be written)."""
        rows = self.rows()
        _replace(self.csv_path, csv_text(rows))
        _replace(self.json_path, json_text(rows, self.opts) + "\n")
