"""docs/ARCHITECTURE.md's layout is the package's: every module is listed in its folder,
and everything listed exists (a module moved or added without the docs fails here)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "src" / "cs457p2p"


def _listed() -> set[str]:
    """The paths the layout block lists, relative to the package (``core/ring.py``);
    ``a.py, b.py`` on one line lists both."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    paths: set[str] = set()
    folders: list[tuple[int, str]] = []  # (indent, name) of the folders we are in
    for line in block.splitlines()[2:]:  # (after "src/cs457p2p/")
        m = re.match(r"^( +)(\S+)", line)
        if not m:
            continue
        indent, first = len(m.group(1)), m.group(2)
        if indent >= 20 and not first.endswith(("/", ".py", ".c", ".lua", ",")):
            continue  # a description that runs on
        while folders and folders[-1][0] >= indent:
            folders.pop()
        where = "/".join(name for _, name in folders)
        if first.endswith("/"):
            folders.append((indent, first.rstrip("/")))
            continue
        head = re.split(r" {2,}", line.strip(), maxsplit=1)[0]  # (the names, not the words)
        names = re.findall(r"[\w.]+\.(?:py|c|lua)", head)
        for name in names:
            paths.add(f"{where}/{name}" if where else name)
    return paths


def test_the_layout_lists_every_module_and_no_other() -> None:
    listed = _listed()
    actual = {
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*")
        if p.suffix in (".py", ".c", ".lua")
        and "__pycache__" not in p.parts
        and not (p.name == "__init__.py" and p.parent != PACKAGE)
    }
    assert sorted(actual - listed) == [], "modules the layout does not list"
    assert sorted(listed - actual) == [], "listed, but no such module"


def test_a_peer_loads_nothing_of_the_trackers() -> None:
    """A peer's state, its port and the peer's driver load neither the tracker's ring
    nor its database (import-linter's contract in pyproject.toml holds the source to it;
    this holds what an import really loads, lazy imports included)."""
    import subprocess
    import sys

    code = (
        "import sys, cs457p2p.core.peer_state, cs457p2p.core.peer_port, cs457p2p.peer.node\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('cs457p2p'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert "cs457p2p.core.peer_port" in out
    tracker = {"cs457p2p.core.ring", "cs457p2p.core.database", "cs457p2p.core.tracker_responder"}
    assert sorted(tracker & set(out)) == []
    assert not [m for m in out if m.startswith("cs457p2p.tracker")]
