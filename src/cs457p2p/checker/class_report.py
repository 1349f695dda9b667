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
from typing import Any

from .grade import OUTCOMES, Grade, GradeOptions, log_of

__all__ = ["FIELDS", "MARKER", "ClassReport", "csv_text", "json_text", "mark_report"]

#: A file in every report folder: a later run never takes that folder for a student.
MARKER = ".cs457p2p-report"

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
    "python",
    "score",
    "max_score",
)


def mark_report(folder: Path) -> None:
    """Mark ``folder`` as a report's (see :data:`MARKER`)."""
    (folder / MARKER).write_text("grades of cs457p2p grade: not a student's folder\n")


Row = dict[str, Any]  # one student's grade as grades.json holds it


def csv_text(rows: Sequence[Row]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        flat = dict(row)
        for key in ("failed", "warnings"):  # (lists in the JSON, text in the CSV)
            if isinstance(flat.get(key), list):
                flat[key] = (" " if key == "failed" else " | ").join(flat[key])
        writer.writerow(flat)
    return out.getvalue()


def json_text(rows: Sequence[Row], opts: GradeOptions) -> str:
    counts = {k: sum(r["outcome"] == k for r in rows) for k in OUTCOMES}
    return json.dumps(
        {
            "kind": opts.kind,
            "part": 2 if opts.kind == "peer" else opts.part,
            "assignment": opts.assignment,
            "command": " ".join(opts.command),
            "transport": opts.transport,
            "students": len(rows),
            "outcomes": {k: v for k, v in counts.items() if v},
            "grades": list(rows),
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
        #: rows of an earlier run kept as they were (``--only`` grades the others)
        self.earlier: dict[str, Row] = {}

    def keep_earlier(self) -> None:
        """Keep the earlier run's rows (from its JSON) for students not graded now."""
        try:
            data = json.loads(self.json_path.read_text(encoding="utf-8"))
            rows = data["grades"]
        except (OSError, ValueError, KeyError, TypeError):
            return
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and isinstance(row.get("student"), str):
                self.earlier[row["student"]] = row

    def rows(self) -> list[Row]:
        """Every student's row, in order: graded now, else as an earlier run left it,
        else ``not-graded``."""
        out = []
        for s in self.students:
            grade = self.grades.get(s)
            if grade is not None:
                out.append(grade.to_json())
            elif s in self.earlier:
                out.append(self.earlier[s])
            else:
                out.append(self._not_graded(s).to_json())
        return out

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
