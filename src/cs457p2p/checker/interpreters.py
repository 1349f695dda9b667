"""Which Python runs a student's program, where a class hands in both: ``{python}`` in a
grading command becomes, per student, the Python 3 or the Python 2.7 that compiles the
student's file (or the one its code says it is written for, when both do), and a file
neither compiles is ``cannot-start`` with the first syntax error, its file and line.

Compiling runs no code of the student's: each interpreter is asked, in a process of its
own bounded in time and memory, to ``compile`` the file.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PLACEHOLDER", "Choice", "Interpreters", "choose", "find_interpreters"]

#: The placeholder a grading command uses for "the student's Python".
PLACEHOLDER = "{python}"
#: Seconds and bytes a compile may take.
_COMPILE_TIMEOUT = 20
_COMPILE_MEMORY = 1 << 30

_COMPILE = (
    "import io, sys\n"
    "path = sys.argv[1]\n"
    "try:\n"
    "    compile(io.open(path, 'rb').read(), path, 'exec')\n"
    "except SyntaxError as e:\n"
    "    sys.stdout.write('%s: %s (%s, line %s)' % (type(e).__name__, e.msg,"
    " e.filename and e.filename.split('/')[-1], e.lineno))\n"
    "    sys.exit(1)\n"
)
#: Python 2 only names: code that compiles under both but is written for Python 2.
_PY2_NAMES = re.compile(rb"\b(raw_input|xrange|unicode|basestring|iteritems|has_key)\b|print\s*>>")


@dataclass(frozen=True)
class Interpreters:
    """The Python 2.7 and Python 3 that students' programs may run under (None: none)."""

    python2: str | None
    python3: str | None


def _runs(path: str | None, major: int) -> str | None:
    if not path:
        return None
    try:
        out = subprocess.run(  # noqa: S603 (an interpreter the instructor named or we found)
            [path, "-c", "import sys; print(sys.version_info[0])"],
            capture_output=True,
            text=True,
            timeout=_COMPILE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if out.returncode == 0 and out.stdout.strip() == str(major) else None


def find_interpreters(python2: str | None = None, python3: str | None = None) -> Interpreters:
    """The interpreters given, else found: ``python3`` on the PATH; ``python2.7`` or
    ``python2`` on the PATH, else pyenv's 2.7."""
    three = _runs(python3 or shutil.which("python3"), 3)
    if python2:
        two = _runs(python2, 2)
    else:
        root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
        pyenv = sorted(glob.glob(os.path.join(root, "versions", "2.7*", "bin", "python2.7")))
        candidates = [shutil.which("python2.7"), shutil.which("python2"), *pyenv]
        two = next((p for p in (_runs(c, 2) for c in candidates) if p), None)
    return Interpreters(two, three)


def _compile_error(python: str, file: Path) -> str | None:
    """None if ``python`` compiles ``file``; else its first syntax error, in one line."""
    try:
        out = subprocess.run(  # noqa: S603 (an interpreter compiling a file, no code run)
            ["prlimit", f"--as={_COMPILE_MEMORY}", "--", python, "-c", _COMPILE, str(file)]
            if shutil.which("prlimit")
            else [python, "-c", _COMPILE, str(file)],
            capture_output=True,
            text=True,
            timeout=_COMPILE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"compiling {file.name} took over {_COMPILE_TIMEOUT} s"
    except OSError as e:
        return f"cannot run {python}: {e.strerror or e}"
    if out.returncode == 0:
        return None
    if out.stdout.strip():
        return out.stdout.strip()
    lines = out.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit {out.returncode}"


@dataclass(frozen=True)
class Choice:
    """The interpreter for one student's file (``python`` None: none can run it, and
    ``why`` says why), and in words which and why (``note``)."""

    python: str | None
    note: str
    why: str = ""


def choose(interpreters: Interpreters, file: Path) -> Choice:
    """The Python that compiles ``file``: Python 3 if only it does, Python 2.7 if only
    it does; if both do, Python 2.7 for code that uses names only Python 2 has
    (``raw_input``, ``xrange``, ``print >>``...), else Python 3."""
    three, two = interpreters.python3, interpreters.python2
    err3 = _compile_error(three, file) if three else "no Python 3 here"
    err2 = _compile_error(two, file) if two else "no Python 2.7 here"
    if err3 is None and err2 is None:
        assert three is not None and two is not None
        if _PY2_NAMES.search(file.read_bytes()):
            return Choice(two, "Python 2.7 (compiles under both; uses Python 2's names)")
        return Choice(three, "Python 3 (compiles under both)")
    if err3 is None:
        return Choice(three, "Python 3" + ("" if two is None else " (not Python 2.7)"))
    if err2 is None:
        return Choice(two, "Python 2.7 (not Python 3)")
    if two is None and three is not None:
        why = f"{err3} under Python 3, and there is no Python 2.7 here (--python2 PATH)"
        return Choice(None, "", why)
    return Choice(None, "", f"{err3} under Python 3; {err2} under Python 2.7")
