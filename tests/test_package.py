"""The package root: its public API resolves, and importing it stays cheap."""

from __future__ import annotations

import ast
import subprocess
import sys
import types
from pathlib import Path

import pytest

import cs457p2p
import cs457p2p.checker
from conftest import TrackerProcess
from standins import REFERENCE_MESSAGE, ReferenceTracker


def test_every_public_name_resolves_to_its_home_module() -> None:
    for name in cs457p2p.__all__:
        value = getattr(cs457p2p, name)
        if isinstance(value, (type, types.FunctionType)):
            assert value.__module__.startswith("cs457p2p."), name
    assert set(dir(cs457p2p)) >= set(cs457p2p.__all__)


def _static_listing(package: types.ModuleType) -> dict[str, set[str]]:
    """What a package's ``if TYPE_CHECKING:`` block imports, module by module (what
    mypy reads), each name checked to be an explicit re-export (``X as X``)."""
    assert package.__file__ is not None
    tree = ast.parse(Path(package.__file__).read_text())
    blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    ]
    assert len(blocks) == 1
    listing: dict[str, set[str]] = {}
    for node in blocks[0].body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.dump(node)
        for alias in node.names:
            assert alias.asname == alias.name, f"{alias.name}: import it as {alias.name}"
            listing.setdefault(node.module or "", set()).add(alias.name)
    return listing


@pytest.mark.parametrize("package", [cs457p2p, cs457p2p.checker], ids=lambda p: p.__name__)
def test_the_two_listings_of_a_lazy_api_agree(package: types.ModuleType) -> None:
    """mypy reads the TYPE_CHECKING imports, the interpreter ``_HOMES``: the same names
    from the same modules, and ``__all__`` is exactly those (the root adds
    ``__version__``); each resolves."""
    homes = {module: set(names) for module, names in package._HOMES.items()}
    assert _static_listing(package) == homes
    names = [name for group in homes.values() for name in group]
    assert len(names) == len(set(names)), "a name listed under two modules"
    extra = ["__version__"] if package is cs457p2p else []
    assert sorted(package.__all__) == sorted([*names, *extra])
    for name in names:
        assert getattr(package, name) is not None


def test_the_public_api_stays_small() -> None:
    """What a user imports: a tracker, a peer, a client, the checks, the codec and the
    errors' bases (h11 exports 23 names). The rest is imported from its module."""
    assert len(cs457p2p.__all__) <= 25
    for internal in ("Ring", "PeerState", "ConnectionRules", "RequestParser", "Incomplete"):
        assert internal not in cs457p2p.__all__
        assert not hasattr(cs457p2p, internal), internal


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        cs457p2p.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as e:
        assert "no_such_name" in str(e)
    else:
        raise AssertionError("no AttributeError")


def client_command_modules(address: str) -> tuple[str, list[str]]:
    """Run the ``client`` command in a fresh interpreter: (its message, the modules of
    cs457p2p and asyncio it loaded)."""
    code = (
        "import sys; from cs457p2p.cli.main import main;"
        f"code = main(['client', '--tracker', '{address}', '-q']);"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('asyncio', 'cs457p2p'))); sys.exit(code)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    message, modules = out.stdout.splitlines()
    return message, eval(modules)  # a list literal printed by the child


def test_the_client_command_does_not_import_the_tracker_side(
    shared_tracker: TrackerProcess,
) -> None:
    """Against our (pipelining) tracker the client command turns to the asyncio client,
    and still loads nothing of the tracker side."""
    message, loaded = client_command_modules(f"127.0.0.1:{shared_tracker.port}")
    assert message == REFERENCE_MESSAGE
    assert "cs457p2p.client.pipeline" in loaded
    for heavy in (
        "cs457p2p.tracker",
        "cs457p2p.core.database",
        "cs457p2p.checker",
        "cs457p2p.bench",
        "cs457p2p.monitoring",
    ):
        assert not any(m == heavy or m.startswith(heavy + ".") for m in loaded), heavy


def test_against_a_reference_style_tracker_the_client_does_not_import_asyncio() -> None:
    """Blocking sockets until the tracker turns out to pipeline: a reference-style run
    does without asyncio's import (a 16-item run took 60 ms instead of 96)."""
    with ReferenceTracker() as ref:
        message, loaded = client_command_modules(ref.address)
    assert message == REFERENCE_MESSAGE
    assert "cs457p2p.client.blocking" in loaded
    assert "asyncio" not in loaded and "cs457p2p.client.pipeline" not in loaded
