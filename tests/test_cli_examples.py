"""The examples at the end of every ``--help``: each one is read from the help as a user
sees it, parsed by the real parser, and (but for the few listed in PARSE_ONLY, with
why) run for real: against trackers, clients, peers and submissions made here, with a
free port in place of 7777."""

from __future__ import annotations

import argparse
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CLI, TrackerFactory, with_share
from cs457p2p.cli.main import COMMANDS, build_parser, parse
from cs457p2p.net import free_port

STUDENTS = Path(__file__).parent / "students"
BINDIR = str(Path(sys.executable).parent)
#: Seconds an example may run (they take 1 to 10 s here).
RUN_TIMEOUT = 120.0
#: Seconds for a server example (tracker, peer) to say it is up.
UP_TIMEOUT = 30.0

#: Examples that are only parsed, and why they are not run here.
PARSE_ONLY = {
    "cs457p2p tracker --host 0.0.0.0 --port 7777 --db words.txt --http 127.0.0.1:8080": (
        "listens on every interface of the machine (tests listen on loopback only)"
    ),
    "cs457p2p check peer --tracker-port 7777 --stdin '{handle}\\n{port}\\n{host}\\n' --"
    " python2 peer.py": "needs the course's sample peer, and the fixed port 7777",
}


def _parsers() -> Iterator[argparse.ArgumentParser]:
    """Every parser whose ``--help`` a user reads: ``cs457p2p``, each command, and each
    WHAT of ``check`` and ``grade``."""
    yield build_parser()
    for name in COMMANDS:
        top = build_parser(name)
        (commands,) = (a for a in top._actions if isinstance(a, argparse._SubParsersAction))
        command = commands.choices[name]
        yield command
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                yield from action.choices.values()


def _examples(help_text: str) -> list[str]:
    """The command lines under ``examples:`` (the lines that start with ``cs457p2p``)."""
    _, found, rest = help_text.partition("\nexamples:\n")
    assert found, "no examples: in this help"
    return [line.strip() for line in rest.splitlines() if line.startswith("  cs457p2p ")]


HELPS = {p.prog: p.format_help() for p in _parsers()}
EXAMPLES = sorted({e for text in HELPS.values() for e in _examples(text)})


@pytest.mark.parametrize("prog", sorted(HELPS))
def test_every_help_ends_with_examples_of_its_command(prog: str) -> None:
    examples = _examples(HELPS[prog])
    assert examples, HELPS[prog]
    for example in examples:
        assert example.startswith(prog), (prog, example)
    # each example under a comment that says what it does
    lines = HELPS[prog].splitlines()
    for example in examples:
        above = lines[lines.index(f"  {example}") - 1]
        assert above.startswith("  # ") and len(above) > 8, above


def test_the_help_shown_is_the_help_tested(capsys: pytest.CaptureFixture[str]) -> None:
    """(``--help`` of the command that runs prints what HELPS holds.)"""
    for argv in (["tracker"], ["check", "peer"], ["grade", "client"], []):
        with pytest.raises(SystemExit) as exit_info:
            parse([*argv, "--help"])
        assert exit_info.value.code == 0
        assert capsys.readouterr().out == HELPS[" ".join(["cs457p2p", *argv])]


def test_parse_only_lists_real_examples() -> None:
    assert set(PARSE_ONLY) <= set(EXAMPLES), set(PARSE_ONLY) - set(EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_parses(example: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = shlex.split(example)[1:]
    if argv[-1] == "--help":
        with pytest.raises(SystemExit) as exit_info:
            parse(argv)
        assert exit_info.value.code == 0
        return
    args = parse(argv)
    assert isinstance(args, argparse.Namespace), capsys.readouterr().err
    assert capsys.readouterr() == ("", "")


# ------------------------------------------------------------------------- running them

#: A peer in the examples' style (``peer.py TRACKER_PORT PORT``, or
#: ``peer.py TRACKER_HOST TRACKER_PORT HANDLE PORT``): this project's peer underneath.
ADAPTER_PEER = """\
import sys
from cs457p2p.cli import main
a = sys.argv[1:]
host, tracker_port, handle, port = ("127.0.0.1", a[0], "peer1", a[1]) if len(a) == 2 else a
sys.exit(main(["peer", "--tracker", host + ":" + tracker_port, "--handle", handle,
               "--listen", "127.0.0.1:" + port, "--quiet"]))
"""
#: A tracker in the examples' style (``tracker.py PORT``): this project's, pinging
#: every second (so that a Part 2 check need not wait 20 s for a PING).
ADAPTER_TRACKER = """\
import sys
from cs457p2p.cli import main
sys.exit(main(["tracker", "--host", "127.0.0.1", "--port", sys.argv[1],
               "--ping-interval", "1", "--ping-timeout", "1"]))
"""


def _student_folder(folder: Path) -> None:
    """What the examples name: client.py, tracker.py, peer.py."""
    folder.mkdir(parents=True)
    shutil.copy(STUDENTS / "clients" / "good_client.py", folder / "client.py")
    (folder / "tracker.py").write_text(ADAPTER_TRACKER)
    (folder / "peer.py").write_text(ADAPTER_PEER)


def _env() -> dict[str, str]:
    """``python3`` and ``cs457p2p`` are this venv's; nothing of this machine's own."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["PATH"] = BINDIR + os.pathsep + env.get("PATH", "")
    return env


def _argv(example: str, port: int) -> list[str]:
    """The example's argv, run as ``python -m cs457p2p``, ``port`` in place of 7777."""
    words = shlex.split(example.replace("7777", str(port)))
    return [*CLI, *with_share(words[1:])]


def _until(proc: subprocess.Popen[str], stream: str, pattern: str) -> str:
    """The first line of the process's ``stream`` that matches, within UP_TIMEOUT."""
    lines: queue.Queue[str | None] = queue.Queue()
    pipe = proc.stderr if stream == "stderr" else proc.stdout
    assert pipe is not None

    def read() -> None:
        for line in pipe:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=UP_TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"nothing matching {pattern!r} within {UP_TIMEOUT} s") from None
        assert line is not None, f"exited ({proc.poll()}) before {pattern!r}: {seen}"
        seen.append(line)
        if re.search(pattern, line):
            return line


def _serve_then_stop(argv: list[str], stream: str, pattern: str, cwd: Path) -> None:
    """A server example: up (a line matching ``pattern``), then SIGINT: exit 0."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _until(proc, stream, pattern)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(RUN_TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


RUN = [e for e in EXAMPLES if e not in PARSE_ONLY]


@pytest.mark.parametrize("example", RUN)
def test_every_example_runs(example: str, tmp_path: Path, start_tracker: TrackerFactory) -> None:
    """Each example does what its comment says, here: exit 0 (a server: up, then
    stopped by SIGINT with exit 0)."""
    _student_folder(tmp_path / "submissions" / "alice")
    cwd = tmp_path / "submissions" / "alice"  # (client.py, peer.py: where a student is)
    words = shlex.split(example)
    if "cs457p2p" in words[2:] and shutil.which("cs457p2p", path=BINDIR) is None:
        pytest.skip("the cs457p2p console script is not installed in this environment")
    if words[1] == "tracker" and words[-1] != "--help":
        _serve_then_stop(_argv(example, free_port()), "stderr", r"^listening on ", cwd)
        return
    needs_tracker = "7777" in example and words[1] != "grade"
    port = 0
    if needs_tracker:
        part2 = "--part" in words and words[words.index("--part") + 1] == "2"
        fresh = ("--ping-interval", "1", "--ping-timeout", "1") if part2 else ()
        port = start_tracker(*fresh).port
    argv = _argv(example, port)
    if words[1] == "peer":
        # (serves the others until stopped: up once the message is printed)
        _serve_then_stop(argv, "stdout", r"^blue skies and snowy peaks", cwd)  # (Part 2)
        return
    if words[1] == "grade":
        cwd = tmp_path
    r = subprocess.run(
        argv,
        cwd=cwd,
        env=_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    if words[1] == "grade":
        assert re.search(r"^graded 1 student: 1 passed; ", r.stdout, re.M), r.stdout
