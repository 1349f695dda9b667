"""``--assignment``: students judged as the course does, end to end with real programs
(each rule's mistakes are unit tests of its judge in tests/test_judges.py)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from conftest import CliRunner

STUDENTS = Path(__file__).parent / "students"
COURSE_CLIENT = STUDENTS / "clients" / "course_client.py"


def _check_client(run_cli: CliRunner, folder: Path, *command: str) -> dict[str, Any]:
    shutil.copy(COURSE_CLIENT, folder / "client.py")
    r = run_cli(
        "check", "client", "--assignment", "hw08", "--json", "--require-sandbox", "--",
        *command,
        timeout=400,
    )  # fmt: skip
    assert r.stderr == "", r.stderr
    report: dict[str, Any] = json.loads(r.stdout)
    assert r.returncode == (0 if report["ok"] else 1)
    return report


def _names(report: dict[str, Any], *, required: bool) -> list[str]:
    return [c["name"] for c in report["checks"] if c["required"] == required]


def test_a_client_that_does_what_hw08_asks_passes(
    run_cli: CliRunner, tmp_path: Path, sandbox: str
) -> None:
    """Python 3, the pause of 2 s: every rule passes; the robustness scenarios are INFO."""
    report = _check_client(
        run_cli, tmp_path, sys.executable, str(tmp_path / "client.py"), "{host}", "{port}"
    )
    assert report["ok"], [c["detail"] for c in report["checks"] if not c["passed"]]
    assert report["assignment"] == "hw08"
    assert _names(report, required=True) == [
        "register", "pickled", "all-items", "pause", "one-at-a-time", "prints-in-order", "exits",
    ]  # fmt: skip
    assert _names(report, required=False) == [
        "empty-db", "chunked-answers", "delayed-answers", "large-db",
    ]  # fmt: skip
    pause = next(c for c in report["checks"] if c["name"] == "pause")
    assert "pauses of 2.0" in pause["detail"]


def test_a_python_2_client_with_the_course_address_written_in_passes(
    run_cli: CliRunner, tmp_path: Path, python2: str, sandbox: str
) -> None:
    """The course's starter keeps ('localhost', 7777): the course's tracker is there in
    the sandbox's own network, so it is checked like any other."""
    report = _check_client(
        run_cli, tmp_path, python2, str(tmp_path / "client.py"), "x", "0", "hardcoded"
    )
    assert report["ok"], [c["detail"] for c in report["checks"] if not c["passed"]]


def test_a_client_that_does_not_pause_fails_only_the_pause(
    run_cli: CliRunner, tmp_path: Path, sandbox: str
) -> None:
    report = _check_client(
        run_cli, tmp_path, sys.executable, str(tmp_path / "client.py"), "{host}", "{port}",
        "no-pause",
    )  # fmt: skip
    failed = [c for c in report["checks"] if c["required"] and not c["passed"]]
    assert [c["name"] for c in failed] == ["pause"]
    assert "time.sleep(2)" in failed[0]["hint"]
