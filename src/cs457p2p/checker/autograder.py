"""A ready Gradescope autograder (``cs457p2p autograder``): a zip with Gradescope's
``setup.sh`` and ``run_autograder`` and this project as a wheel, built from the package
this process runs (its Python files and data; no compiled extension: the wheel is pure
and runs the pure-Python twins). ``setup.sh`` installs the wheel in a venv (and, on
Gradescope's Ubuntu, Python 2.7 and bubblewrap); ``run_autograder`` checks the
submission with ``--assignment`` and writes ``results/results.json``.

Both scripts take their root from ``AUTOGRADER_ROOT`` (Gradescope's ``/autograder`` when
unset), so that the zip can be tried anywhere: unzip it into ``ROOT/source``, put a
submission in ``ROOT/submission``, run ``setup.sh`` then ``run_autograder``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shlex
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["DEFAULT_COMMANDS", "build_autograder", "wheel_bytes"]

#: What runs a student's program under each assignment, unless the instructor says.
DEFAULT_COMMANDS = {
    "hw08": ["{python}", "client.py", "{host}", "{port}"],
    "hw09": ["{python}", "peer.py"],
}
#: The stdin a HW09 peer gets, as the course's starter asks (port, host, handle, tracker).
HW09_STDIN = "{port}\\n{host}\\n{handle}\\n{tracker_host}\\n"

_SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when the autograder is built.
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null && [ -z "${AUTOGRADER_NO_APT:-}" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3 python3-venv bubblewrap >/dev/null
    apt-get install -y -qq python2 >/dev/null || echo "no python2 package: Python 3 only"
fi
python3 -m venv "$ROOT/venv"
"$ROOT/venv/bin/pip" install -q "$ROOT"/source/cs457p2p-*.whl
"$ROOT/venv/bin/cs457p2p" --version
"""

_RUN = """#!/usr/bin/env bash
# Gradescope runs this for each submission; results/results.json is the grade.
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
mkdir -p "$ROOT/results"
cd "$ROOT/submission"
"$ROOT/venv/bin/cs457p2p" check {kind} --assignment {assignment} --json \\
    --gradescope "$ROOT/results/results.json" {extra}-- {command} \
    > "$ROOT/results/report.json" 2>&1
code=$?
if [ ! -s "$ROOT/results/results.json" ]; then
    # (the check could not run at all: say why, for no points)
    why=$(tail -n 1 "$ROOT/results/report.json" 2>/dev/null)
    printf '{{"score": 0, "output": "%s", "tests": []}}\\n' \\
        "$(printf '%s' "${{why:-the check could not run (exit $code)}}" | sed 's/"/\\\\"/g')" \\
        > "$ROOT/results/results.json"
fi
exit 0
"""


def _package_files(package: Path) -> Iterator[tuple[str, bytes]]:
    """The package's files a pure wheel carries: sources, stubs, data; no compiled
    extension, no caches."""
    for path in sorted(package.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        if path.suffix in (".so", ".pyd", ".pyc", ".c", ".o"):
            continue
        yield f"{package.name}/{path.relative_to(package).as_posix()}", path.read_bytes()


def _digest(data: bytes) -> str:
    raw = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def wheel_bytes(package: Path, version: str) -> tuple[str, bytes]:
    """A pure (``py3-none-any``) wheel of ``package``: its name and its bytes."""
    name = f"cs457p2p-{version}"
    info = f"{name}.dist-info"
    meta = {
        f"{info}/METADATA": (
            "Metadata-Version: 2.1\nName: cs457p2p\n"
            f"Version: {version}\nRequires-Python: >=3.10\n"
            "Requires-Dist: tomli>=1.1; python_version < '3.11'\n"
        ),
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: cs457p2p autograder\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
        f"{info}/entry_points.txt": "[console_scripts]\ncs457p2p = cs457p2p.cli.main:main\n",
    }
    entries = [*_package_files(package), *((k, v.encode()) for k, v in meta.items())]
    record = [f"{n},{_digest(d)},{len(d)}" for n, d in entries] + [f"{info}/RECORD,,"]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in entries:
            z.writestr(n, d)
        z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return f"{name}-py3-none-any.whl", out.getvalue()


def build_autograder(
    kind: str,
    assignment: str,
    package: Path,
    version: str,
    command: Sequence[str] | None = None,
    rubric: Path | None = None,
) -> bytes:
    """The autograder zip for ``check KIND --assignment ASSIGNMENT`` of a submission
    (``command``: how its program is run; default :data:`DEFAULT_COMMANDS`)."""
    argv = list(command or DEFAULT_COMMANDS[assignment])
    extra = ""
    if kind == "peer":
        extra += f"--stdin {shlex.quote(HW09_STDIN)} "
    if rubric is not None:
        extra += '--rubric "$ROOT/source/rubric.toml" '
    run = _RUN.format(
        kind=kind,
        assignment=assignment,
        command=" ".join(shlex.quote(a) for a in argv),
        extra=extra,
    )
    wheel_name, wheel = wheel_bytes(package, version)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in (("setup.sh", _SETUP), ("run_autograder", run)):
            entry = zipfile.ZipInfo(name)
            entry.external_attr = 0o755 << 16  # (executable, as Gradescope runs them)
            entry.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(entry, text)
        z.writestr(wheel_name, wheel)
        if rubric is not None:
            z.writestr("rubric.toml", rubric.read_bytes())
    return out.getvalue()
