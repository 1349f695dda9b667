"""What a sandboxed program sees: the system read-only, the interpreter it needs, a
private copy of its folder at the folder's own path, a /tmp of its own; and the
``bwrap`` command line that builds that view, sets the limits and drops privileges
before the program's first instruction."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from .limits import SandboxLimits

__all__ = [
    "BWRAP_FLAGS",
    "MAX_FOLDER_FILES",
    "ORIGINAL",
    "SETUP_FAILED",
    "bwrap_command",
    "copyable",
    "named_outside",
    "resolve",
    "system_folder",
    "system_view",
]

#: Read-only system folders every sandbox sees (a link stays a link).
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
#: Where the original folder is seen, read-only, to be copied from.
ORIGINAL = "/run/cs457p2p/submission"
#: The largest folder a sandbox copies (its files, in bytes and in number).
MAX_FOLDER_FILES = 5000
#: The sandbox's own /tmp (a tmpfs of its own, not the host's).
TMP = "/tmp"  # noqa: S108
#: Exit status of the setup script when the sandbox could not be set up.
SETUP_FAILED = 125


BWRAP_FLAGS = (
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--die-with-parent",
    "--new-session",
    "--hostname",
    "sandbox",
)


def system_view() -> list[str]:
    out: list[str] = []
    for d in SYSTEM:
        if os.path.islink(d):
            out += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            out += ["--ro-bind", d, d]
    return [*out, "--proc", "/proc", "--dev", "/dev"]


@functools.lru_cache(maxsize=64)
def _interpreter(path: str) -> tuple[str, str] | None:
    """``(executable, prefix)`` of the Python at ``path`` (a link, a venv's, a pyenv
    shim): what the sandbox runs and the folder it must see."""
    code = "import os,sys;print(os.path.realpath(sys.executable));print(sys.base_prefix)"
    try:
        out = subprocess.run(  # noqa: S603 (the interpreter the instructor named)
            [path, "-c", code], capture_output=True, timeout=20, check=False, text=True
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = out.stdout.split()
    if out.returncode != 0 or len(lines) != 2:
        return None
    return lines[0], os.path.realpath(lines[1])


def _under(path: str, folders: Sequence[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def _system_roots() -> list[str]:
    return [os.path.realpath(d) for d in SYSTEM if os.path.exists(d)]


def resolve(argv0: str, cwd: Path) -> tuple[str, list[str]]:
    """What to execute for ``argv0`` in the sandbox, and the folders outside the system's
    it needs to see: a program found on PATH outside ``/usr`` brings its installation's
    folder (a Python: the real interpreter and its prefix)."""
    if "/" in argv0 and not os.path.isabs(argv0):
        # (in the student's folder, unless it leads out of it: .venv/bin/python is a
        # link to an interpreter elsewhere, which the sandbox must then show)
        inside = os.path.join(cwd, argv0)
        if not os.path.exists(inside) or _under(os.path.realpath(inside), [os.path.realpath(cwd)]):
            return argv0, []
        found: str | None = inside
    else:
        found = argv0 if os.path.isabs(argv0) else shutil.which(argv0)
    if found is None:
        return argv0, []
    real = os.path.realpath(found)
    if _under(real, [str(cwd)]):
        return argv0, []
    name = os.path.basename(real)
    is_python = name.startswith(("python", "pypy")) or os.path.basename(found).startswith(
        ("python", "pypy")
    )
    if is_python and not _under(real, _system_roots()):
        got = _interpreter(found)
        if got is not None:
            exe, prefix = got
            return exe, [] if _under(prefix, _system_roots()) else [prefix]
    if _under(real, _system_roots()):
        return argv0, []
    binds = [os.path.dirname(os.path.dirname(real))]
    interpreter = _shebang(real)  # (a script: a venv's console script names its python)
    if interpreter is not None and not _under(interpreter, _system_roots()):
        binds += [os.path.dirname(os.path.dirname(interpreter)), *resolve(interpreter, cwd)[1]]
    return real, list(dict.fromkeys(binds))


def _shebang(path: str) -> str | None:
    """The interpreter a script's ``#!`` line names by absolute path, or None."""
    try:
        with open(path, "rb") as f:
            first = f.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").split()
    return words[0] if words and words[0].startswith("/") else None


def system_folder(folder: Path) -> str | None:
    """Why ``folder`` cannot be a sandbox's folder (``/``, a system folder), or None."""
    real = os.path.realpath(folder)
    if (
        real == "/"
        or _under(real, _system_roots())
        or any(_under(r, [real]) for r in _system_roots())
    ):
        return f"{folder} is a system folder: run the program from a folder of its own"
    return None


def copyable(folder: Path, limits: SandboxLimits) -> bool:
    """Whether ``folder`` is small enough for its copy in the sandbox (its disk limit,
    :data:`MAX_FOLDER_FILES` files); a bigger one is seen read-only instead."""
    total = files = 0
    for root, dirs, names in os.walk(os.path.realpath(folder)):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
        for n in names:
            files += 1
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(root, n))
                total += 0 if os.path.islink(os.path.join(root, n)) else st.st_size
            if files > MAX_FOLDER_FILES or total > limits.disk:
                return False
    return True


def named_outside(args: Sequence[str], folder: Path) -> tuple[list[str], list[str]]:
    """The files and the folders the command names by absolute path outside ``folder``
    (``python3 /path/to/client.py``): the program may read them, as its command says."""
    files, folders = [], []
    for arg in args:
        real = os.path.realpath(arg)
        if not os.path.isabs(arg) or _under(real, [str(folder)]):
            continue
        if os.path.isfile(arg):
            files.append(arg)
        elif os.path.isdir(real) and not _under(real, _system_roots()) and real != "/":
            folders.append(real)
    return files, folders


def _ancestors(path: str) -> list[str]:
    """``/a``, ``/a/b`` for ``/a/b/c``: the folders a bind at ``path`` makes."""
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: k + 1]) for k in range(len(parts))]


_SETUP = r"""
status=$1; shift; copy=$1; shift; uid=$1; shift; fds=$1; shift
if [ "$copy" = copy ] && ! cp -R {original}/. . 2>/dev/null; then
  echo "cannot copy the folder into the sandbox: over its disk limit?" >&$status; exit {failed}
fi
if [ "$copy" = copy ] && [ "$uid" != - ]; then
  if ! chown -R "$uid:$uid" .; then
    echo "cannot give the folder to uid $uid" >&$status; exit {failed}
  fi
fi
echo started >&$status
for fd in $fds; do eval "exec $fd>&-"; done
if [ "$uid" != - ]; then
  exec setpriv --reuid="$uid" --regid="$uid" --clear-groups --inh-caps=-all \
    --bounding-set=-all --no-new-privs -- "$@"
fi
exec "$@"
"""


def bwrap_command(
    bwrap: str,
    limits: SandboxLimits,
    argv: Sequence[str],
    *,
    folder: Path,
    copy: bool,
    root: bool,
    cgroup: bool,
    uid: int | None,
    share: Sequence[str],
    status: int,
    fds: Sequence[int],
    env: Mapping[str, str] | None = None,
    files: Sequence[tuple[int, str]] = (),
) -> list[str]:
    """The ``bwrap`` command line that runs ``argv`` in a sandbox over ``folder`` (a
    private copy of it where ``copy``, else the folder itself, read-only): with the
    usual environment and ``env``; ``root``: the grader is root (then the program
    runs as ``uid``); ``cgroup``: memory is capped run-wide (rlimits are looser);
    ``share``: folders it may read; ``status``: the status pipe's fd; ``fds``: the fds
    the setup script closes before the program starts; ``files``: ``(fd, path)`` of
    files the command names outside the folder, given read-only at their paths."""
    program, extra = resolve(argv[0], folder)
    where = str(folder)
    out = [bwrap, *BWRAP_FLAGS]
    if not root:
        out += ["--unshare-user", "--disable-userns"]
        if os.geteuid() == 0:  # (root of a user namespace only: the program is not)
            out += ["--uid", "65534", "--gid", "65534"]
    out += system_view()
    out += ["--perms", "1777", "--size", str(limits.tmp), "--tmpfs", TMP]
    if copy:
        out += ["--ro-bind", where, ORIGINAL]
        out += ["--perms", "0755", "--size", str(limits.disk), "--tmpfs", where]
    else:
        out += ["--ro-bind", where, where]
    named = named_outside(argv[1:], folder)[1]
    binds = [where] + [p for p in [*extra, *share, *named] if not _under(p, [where])]
    for prefix in binds[1:]:
        out += ["--ro-bind", prefix, prefix]
    for fd, path in files:  # (a copy: readable whatever the folders above it allow)
        out += ["--perms", "0644", "--ro-bind-data", str(fd), path]
    made = [d for b in [*binds, *(path for _, path in files)] for d in _ancestors(b)]
    for d in dict.fromkeys(made):  # (bwrap makes them 0700; a bind's own stay as they are)
        if d != TMP and not _under(d, [*_system_roots(), *binds]):
            out += ["--chmod", "0755", d]
    bindir = [os.path.dirname(program)] if os.path.isabs(program) else []
    path = ":".join([*bindir, "/usr/local/bin", "/usr/bin", "/bin"])
    out += ["--chdir", where, "--clearenv"]
    environ = {
        "PATH": path,
        "HOME": where if copy else TMP,
        "USER": "student",
        "LANG": "C.UTF-8",
        "TMPDIR": TMP,
        "TERM": "dumb",
        **({"PYTHONPATH": ":".join(share)} if share else {}),
        **(env or {}),
    }
    for k, v in environ.items():
        out += ["--setenv", k, v]
    # the setup script, then the limits, then the program
    memory = limits.memory * (4 if cgroup else 1)
    rlimits = [
        "prlimit",
        f"--as={memory}",
        f"--cpu={limits.cpu_seconds}",
        f"--fsize={limits.disk}",
        f"--nofile={limits.open_files}",
        f"--nproc={limits.processes}",
        "--core=0",
        "--",
    ]
    script = _SETUP.format(original=ORIGINAL, failed=SETUP_FAILED)
    user = "-" if uid is None else str(uid)
    close = " ".join(str(fd) for fd in fds)
    setup = [str(status), "copy" if copy else "-", user, close]
    return [*out, "--", "bash", "-c", script, "setup", *setup, *rlimits, program, *argv[1:]]
