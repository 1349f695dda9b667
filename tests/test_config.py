"""One configuration: each default is written once, in a dataclass (or in the core rule
it is the default of); the ``tracker`` and ``peer`` commands' options are built from
them, their ``--help`` shows them, and each command is options -> config -> one call
(``tracker.app.serve``, ``peer.app.run_peer``), which a library user can make too."""

from __future__ import annotations

import argparse
import ast
import inspect
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import LISTENING, STARTUP_TIMEOUT, STOP_TIMEOUT, TrackerFactory
from cs457p2p.cli import peer as peer_cli
from cs457p2p.cli import tracker as tracker_cli
from cs457p2p.cli.main import build_parser, parse
from cs457p2p.client.blocking import fetch_blocking
from cs457p2p.core import ping_rounds
from cs457p2p.core.addresses import DEFAULT_HOST, DEFAULT_PORT, format_address
from cs457p2p.core.connection_rules import Limits
from cs457p2p.core.faults import FaultConfig
from cs457p2p.core.fetch import ClientConfig
from cs457p2p.core.ring import RING_DEFAULTS, Ring
from cs457p2p.peer.app import RunConfig, run_peer
from cs457p2p.peer.config import PeerConfig
from cs457p2p.peer.node import PeerError
from cs457p2p.simulator import SimConfig
from cs457p2p.tracker.app import ConfigError, ServeConfig, StartError, serve
from cs457p2p.tracker.config import TrackerConfig
from cs457p2p.tracker.ring_keeper import RingKeeper
from standins import free_port

CLI_DIR = Path(__file__).parent.parent / "src" / "cs457p2p" / "cli"
FIVE = "blue skies and snowy peaks"


def _command(name: str) -> argparse.ArgumentParser:
    parser = build_parser(name)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command: argparse.ArgumentParser = sub.choices[name]
    return command


def _args(argv: list[str]) -> argparse.Namespace:
    args = parse(argv)
    assert isinstance(args, argparse.Namespace), args
    return args


# ------------------------------------------------------------------- one place each


def test_the_tracker_commands_defaults_are_the_dataclasses() -> None:
    assert tracker_cli.config(_args(["tracker"])) == ServeConfig()


def test_the_peer_commands_defaults_are_the_dataclasses() -> None:
    config = peer_cli.config(_args(["peer", "--handle", "alice"]))
    assert config == RunConfig(peer=PeerConfig(handle="alice"))


@pytest.mark.parametrize("module", ["tracker.py", "peer.py", "client.py", "simulate.py"])
def test_the_command_line_writes_no_default_of_its_own(module: str) -> None:
    """Every ``default=`` of the options reads a dataclass; a literal (a number, a
    word) written there would be a second copy of a default."""
    tree = ast.parse((CLI_DIR / module).read_text())
    literal = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr != "add_argument":
            continue
        for kw in node.keywords:
            if kw.arg != "default":
                continue
            values = kw.value.elts if isinstance(kw.value, ast.Tuple) else [kw.value]
            if any(isinstance(v, ast.Constant) and v.value is not None for v in values):
                literal.append(f"{module}:{node.lineno}: {ast.unparse(node.args[0])}")
    assert literal == []


def _shown(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return format_address(*value)
    return str(value)


@pytest.mark.parametrize("name", ["tracker", "peer", "client"])
def test_help_shows_every_default(name: str) -> None:
    """Each option with a default says it in its help; the fault options, all off,
    are said so by their group's title."""
    parser = _command(name)
    formatter = parser._get_formatter()
    faults = next((g for g in parser._action_groups if g.title and "fault" in g.title), None)
    fault_actions = set(map(id, faults._group_actions)) if faults is not None else set()
    checked = 0
    for action in parser._actions:
        if action.default in (None, argparse.SUPPRESS) or action.default is False:
            continue
        if not action.option_strings:
            continue
        if id(action) in fault_actions:
            continue
        text = formatter._expand_help(action)
        assert f"default: {_shown(action.default)}" in text, (action.option_strings, text)
        checked += 1
    assert checked >= {"tracker": 15, "peer": 6, "client": 6}[name]
    if name == "tracker":
        assert faults is not None and faults.title is not None
        assert "all off by default" in faults.title
        assert not FaultConfig().active


def test_help_shows_the_defaults_on_the_command_line() -> None:
    for name, words in (
        ("tracker", ("(default: 7777;", "(default: 1024)", "(default: 20, as the course's)")),
        ("peer", ("(default: localhost:7777)", "(default: 1000000)", "(default: 16)")),
    ):
        out = subprocess.run(
            [sys.executable, "-m", "cs457p2p", name, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "200"},
            check=True,
        ).stdout
        for word in words:
            assert word in out, (name, word)


def test_the_defaults_the_others_read_are_the_ring_and_limits_own() -> None:
    tracker = TrackerConfig()
    assert tracker.limits == Limits()
    assert (tracker.host, tracker.port) == (DEFAULT_HOST, DEFAULT_PORT)
    assert PeerConfig(handle="a").tracker == (DEFAULT_HOST, DEFAULT_PORT)
    ring_fields = (
        tracker.max_peers,
        tracker.max_peers_per_address,
        tracker.ping_interval,
        tracker.ping_timeout,
    )
    assert ring_fields == (
        RING_DEFAULTS.max_peers,
        RING_DEFAULTS.per_address,
        RING_DEFAULTS.ping_interval,
        RING_DEFAULTS.ping_timeout,
    )
    # (the PING schedule reads the ring's, and the keeper and the simulator read it)
    assert (
        RING_DEFAULTS.ping_interval,
        RING_DEFAULTS.ping_timeout,
    ) == (ping_rounds.PING_INTERVAL, ping_rounds.PING_TIMEOUT)
    sim = SimConfig(peers=1, items=1)
    assert (sim.ping_interval, sim.ping_timeout) == (
        RING_DEFAULTS.ping_interval,
        RING_DEFAULTS.ping_timeout,
    )
    keeper = inspect.signature(RingKeeper).parameters
    assert keeper["ping_interval"].default == RING_DEFAULTS.ping_interval
    assert keeper["ping_timeout"].default == RING_DEFAULTS.ping_timeout
    ring = inspect.signature(Ring).parameters
    assert ring["max_peers"].default == RING_DEFAULTS.max_peers
    assert ring["per_address"].default == RING_DEFAULTS.per_address
    assert ring["per_connection"].default == RING_DEFAULTS.per_connection


def test_settings_are_given_by_keyword() -> None:
    with pytest.raises(TypeError):
        Limits(1024)  # type: ignore[misc]
    with pytest.raises(TypeError):
        PeerConfig(("127.0.0.1", 7777), "alice")  # type: ignore[misc]
    with pytest.raises(ValueError, match="not both"):
        ServeConfig(db="words.txt", message="two words")


# -------------------------------------------------------------------- the tracker's app


def test_serve_refuses_what_it_cannot_serve_before_starting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--http needs --workers 1"):
        serve(ServeConfig(workers=2, http=("127.0.0.1", 0)))
    with pytest.raises(ConfigError, match="--log-level info needs --workers 1"):
        serve(ServeConfig(workers=2, log_level="info"))
    with pytest.raises(ConfigError, match=r"missing\.txt: cannot read"):
        serve(ServeConfig(db=str(tmp_path / "missing.txt")))


def test_serve_says_when_its_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = ServeConfig(tracker=TrackerConfig(host="127.0.0.1", port=port, transport="tcp"))
        with pytest.raises(StartError, match=f"cannot listen on 127.0.0.1:{port}"):
            serve(config)


def _python(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serve_is_the_tracker_process_for_a_library_user() -> None:
    """``serve(ServeConfig(...))`` from a program of one's own: the same one line, the
    message served, and a clean end on SIGTERM."""
    p = _python(
        """
        from cs457p2p.tracker.app import ServeConfig, serve
        from cs457p2p.tracker.config import TrackerConfig

        serve(ServeConfig(tracker=TrackerConfig(host="127.0.0.1", port=0),
                          message="served by a program"))
        """
    )
    try:
        assert p.stderr is not None
        line = p.stderr.readline().rstrip("\n")  # (bounded: the process is killed below)
        m = LISTENING.match(line)
        assert m is not None and m["n"] == "4", line
        result = fetch_blocking(ClientConfig(host="127.0.0.1", port=int(m["port"])))
        assert result.message == "served by a program"
        p.send_signal(signal.SIGTERM)
        assert p.wait(STOP_TIMEOUT) == 0
        assert p.stderr.read() == ""
    finally:
        p.kill()
        p.communicate(timeout=STOP_TIMEOUT)


# ---------------------------------------------------------------------- the peer's app


def test_run_peer_says_why_it_cannot_take_part() -> None:
    config = RunConfig(
        peer=PeerConfig(handle="alice", tracker=("127.0.0.1", free_port())), quiet=True
    )
    with pytest.raises(PeerError, match="cannot register with the tracker: connection refused"):
        run_peer(config)


def test_run_peer_is_the_peer_process_for_a_library_user(start_tracker: TrackerFactory) -> None:
    """``run_peer(RunConfig(...))`` from a program of one's own: the message on stdout,
    nothing on stderr when quiet, and its end after ``linger``."""
    t = start_tracker()
    p = _python(
        f"""
        from cs457p2p.peer.app import RunConfig, run_peer
        from cs457p2p.peer.config import PeerConfig

        peer = PeerConfig(handle="solo", tracker=("127.0.0.1", {t.port}),
                          listen_host="127.0.0.2", patience=0.5)
        run_peer(RunConfig(peer=peer, linger=0.1, quiet=True))
        """
    )
    try:
        out, err = p.communicate(timeout=STARTUP_TIMEOUT * 3)
    finally:
        p.kill()
    assert (p.returncode, out, err) == (0, FIVE + "\n", "")
