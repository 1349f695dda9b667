"""The ``cs457p2p`` command line, and many clients at once against one tracker."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ClientSpawner, CliRunner, TrackerFactory, TrackerProcess, Wrapper
from cs457p2p import __version__
from cs457p2p.cli.main import build_parser, main
from cs457p2p.client import ClientConfig, FetchResult, fetch_message
from standins import REFERENCE_MESSAGE, error_line, reference_fetch


def test_demo_prints_the_message(run_cli: CliRunner) -> None:
    r = run_cli("demo", timeout=15)
    assert r.returncode == 0, r.stderr
    assert r.stdout == REFERENCE_MESSAGE + "\n"
    assert "Traceback" not in r.stderr


def test_python_dash_m_runs_the_command() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "cs457p2p", "--version"],
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert (r.returncode, r.stdout.strip()) == (0, f"cs457p2p {__version__}")


def test_console_script_runs_the_command() -> None:
    bindir = Path(sys.executable).parent
    script = shutil.which("cs457p2p", path=str(bindir)) or shutil.which("cs457p2p")
    if script is None:
        pytest.skip("the cs457p2p console script is not installed in this environment")
    r = subprocess.run([script, "demo"], capture_output=True, text=True, timeout=15, check=False)
    assert (r.returncode, r.stdout) == (0, REFERENCE_MESSAGE + "\n"), r.stderr


@pytest.mark.parametrize("args", [["--help"], ["tracker", "--help"], ["client", "--help"]])
def test_help(run_cli: CliRunner, args: list[str]) -> None:
    r = run_cli(*args, timeout=15)
    assert r.returncode == 0
    assert r.stdout.startswith("usage: cs457p2p")
    assert r.stderr == ""
    if args == ["--help"]:
        for command in ("tracker", "client", "demo"):
            assert command in r.stdout
    else:
        assert "--" in r.stdout


@pytest.mark.parametrize(
    "args",
    [["frobnicate"], [], ["--frobnicate"], ["demo", "extra"], ["tracker", "--port"]],
    ids=["unknown-command", "no-command", "unknown-option", "extra-argument", "missing-value"],
)
def test_usage_error_is_one_line_exit_2(run_cli: CliRunner, args: list[str]) -> None:
    r = run_cli(*args, timeout=15)
    assert r.returncode == 2
    assert r.stdout == ""
    line = error_line(r.stderr)
    assert line.startswith("cs457p2p") and "error" in line


def test_200_concurrent_clients_against_one_tracker(
    start_tracker: TrackerFactory, spawn_client: ClientSpawner
) -> None:
    words = [f"word{i}" for i in range(120)]
    message = " ".join(words)
    t = start_tracker("--message", message)
    assert t.n == len(words)

    # a handful of real client processes, started first so they overlap the rest
    procs = [spawn_client(t.address, "--quiet") for _ in range(5)]
    # some reference-style clients (one connection per request) in threads
    reference_results: list[str | BaseException] = []

    def reference_client() -> None:
        try:
            reference_results.append(reference_fetch("127.0.0.1", t.port, protocol=0))
        except BaseException as e:  # reported below
            reference_results.append(e)

    threads = [threading.Thread(target=reference_client, daemon=True) for _ in range(4)]
    for th in threads:
        th.start()

    async def sessions() -> list[FetchResult | BaseException]:
        config = ClientConfig(host="127.0.0.1", port=t.port, timeout=15)
        tasks = [fetch_message(config) for _ in range(200)]
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 40)

    start = time.monotonic()
    results = asyncio.run(sessions())
    elapsed = time.monotonic() - start
    failures = [r for r in results if not isinstance(r, FetchResult)]
    assert not failures, failures[:3]
    assert all(r.message == message for r in results if isinstance(r, FetchResult))
    assert all(not r.reference_style for r in results if isinstance(r, FetchResult))

    for th in threads:
        th.join(20)
    assert reference_results == [message] * 4
    for p in procs:
        out, err = p.communicate(timeout=20)
        assert (p.returncode, out, err) == (0, message + "\n", "")
    assert t.alive()
    assert elapsed < 30, elapsed


def test_cli_works_from_any_directory(tmp_path: Path) -> None:
    """The command does not depend on the current directory (nothing read from it)."""
    r = subprocess.run(
        [sys.executable, "-m", "cs457p2p", "demo"],
        capture_output=True,
        text=True,
        timeout=15,
        cwd=tmp_path,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )
    assert (r.returncode, r.stdout) == (0, REFERENCE_MESSAGE + "\n"), r.stderr


@pytest.mark.filterwarnings("error")  # also the unraisable "never awaited" warning
def test_loop_uvloop_when_missing_is_a_clean_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import gc
    import warnings

    from cs457p2p.tracker.app import LoopUnavailable, run_loop

    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a "coroutine was never awaited" would fail here
        with pytest.raises(LoopUnavailable):
            run_loop(asyncio.sleep(0), "uvloop")
        gc.collect()
    assert run_loop(asyncio.sleep(0, result=7), "auto") == 7


@pytest.mark.parametrize(
    "argv",
    [
        ["tracker", "--port", "0", "--loss", "0.1", "--delay", "5:2"],
        ["client", "--tracker", "127.0.0.1:9", "-q"],
        ["bench", "--clients", "3"],
        ["demo"],
        ["check", "tracker", "127.0.0.1:9", "--json"],
        ["check", "client", "--scenario", "udp-loss", "--transport", "udp", "x"],
    ],
)
def test_the_parser_of_one_command_reads_it_as_the_whole_parser_does(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``main`` builds only the options of the command it runs (start-up): the same
    arguments, defaults and help as the parser with every command."""
    whole, one = build_parser(), build_parser(argv[0])
    assert vars(one.parse_args(argv)) == vars(whole.parse_args(argv))
    helps = []
    for parser in (whole, one):
        with pytest.raises(SystemExit):
            parser.parse_args([*argv[: 2 if argv[0] == "check" else 1], "--help"])
        helps.append(capsys.readouterr().out)
    assert helps[0] == helps[1] and "usage:" in helps[0]


@pytest.mark.parametrize(
    ("argv", "left", "meant"),
    [
        (["tracker", "7777"], "7777", "the port is an option: cs457p2p tracker --port 7777"),
        (
            ["client", "127.0.0.1", "7777"],
            "127.0.0.1 7777",
            "the tracker is an option: cs457p2p client --tracker 127.0.0.1:7777",
        ),
        (
            ["client", "7777"],
            "7777",
            "the tracker is an option: cs457p2p client --tracker 127.0.0.1:7777",
        ),
        (
            ["client", "example.org:7777", "-q"],
            "example.org:7777",
            "the tracker is an option: cs457p2p client --tracker example.org:7777",
        ),
        (
            ["peer", "--handle", "alice", "127.0.0.1", "7777"],
            "127.0.0.1 7777",
            "the tracker is an option: cs457p2p peer --tracker 127.0.0.1:7777",
        ),
        (
            ["check", "tracker", "127.0.0.1", "7777"],
            "7777",
            "write the address as one argument: cs457p2p check tracker 127.0.0.1:7777",
        ),
        (["tracker", "--port", "7777", "words.txt"], "words.txt", None),
        (["demo", "extra"], "extra", None),
    ],
)
def test_a_left_over_argument_says_what_was_meant(
    argv: list[str], left: str, meant: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Arguments written as the course's programs take them (``tracker.py 7777``,
    ``client.py HOST PORT``): one line that says the options to use and where the
    command's help is; exit 2."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    prog = "cs457p2p " + " ".join(argv[:2] if argv[0] == "check" else argv[:1])
    see = f"see {prog} --help"
    why = f"{meant}; {see}" if meant else see
    assert (out, err) == ("", f"{prog}: error: unrecognized arguments: {left} ({why})\n")


@pytest.mark.parametrize("text", ["7777", "0", "65535"])
def test_a_bare_port_is_a_port_on_127_0_0_1(text: str) -> None:
    for argv in (
        ["check", "tracker", text],
        ["client", "--tracker", text],
        ["bench", "--tracker", text],
        ["peer", "--handle", "a", "--tracker", text],
    ):
        args = build_parser(argv[0]).parse_args(argv)
        assert (args.address if argv[0] == "check" else args.tracker) == ("127.0.0.1", int(text))


def test_a_bare_port_out_of_range_is_a_usage_error(run_cli: CliRunner) -> None:
    r = run_cli("check", "tracker", "70000", timeout=15)
    assert (r.returncode, r.stdout) == (2, "")
    assert error_line(r.stderr) == (
        "cs457p2p check tracker: error: argument HOST:PORT: bad port 70000: must be 0..65535"
        " (see cs457p2p check tracker --help)"
    )


def test_check_tracker_with_a_bare_port_checks_the_tracker_on_127_0_0_1(
    run_cli: CliRunner, tracker: TrackerProcess
) -> None:
    r = run_cli("check", "tracker", str(tracker.port), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = r.stdout.splitlines()[-1]
    assert summary == f"tracker 127.0.0.1:{tracker.port}: 10/10 required checks passed"


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return capsys.readouterr().out


def test_the_help_texts_say_what_each_option_is(capsys: pytest.CaptureFixture[str]) -> None:
    tracker = " ".join(_help(["tracker"], capsys).split())
    assert "to clients (Part 1) and keep the ring of peers (Part 2)" in tracker
    simulate = _help(["simulate"], capsys)
    for option in ("--peers P", "--items N", "--seed S", "--downtime SECONDS"):
        (line,) = [ln for ln in simulate.splitlines() if ln.strip().startswith(option)]
        assert len(line.strip()) > len(option) + 10, line  # (a help text beside it)
    # a client is Part 1 and a peer Part 2: no --part offered, a --part that agrees taken
    for kind, part in (("client", "1"), ("peer", "2")):
        assert "--part" not in _help(["grade", kind], capsys)
        args = build_parser("grade").parse_args(
            ["grade", kind, "subs", "--command", "x {port}", "--part", part]
        )
        assert args.part == int(part)
    assert "--part {1,2}" in _help(["grade", "tracker"], capsys)


def test_demo_peers_where_127_0_0_1_is_the_only_loopback_address(
    only_127_0_0_1: Wrapper,
) -> None:
    """As on macOS without aliases: the peers all listen on 127.0.0.1."""
    r = subprocess.run(
        only_127_0_0_1([sys.executable, "-m", "cs457p2p", "demo", "--peers", "3"]),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (r.returncode, r.stdout) == (0, REFERENCE_MESSAGE + "\n"), r.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_tracker_with_values_not_ascii_says_what_a_python2_client_meets(
    start_tracker: TrackerFactory, workers: str
) -> None:
    from cs457p2p.tracker.app import NON_ASCII_NOTE

    t = start_tracker("--workers", workers, "--message", "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e")
    lines = [t.next_line(10) for _ in range(1 if workers == "1" else 2)]
    assert lines[-1] == NON_ASCII_NOTE
    assert NON_ASCII_NOTE.count("\n") == 1 and "PYTHONIOENCODING=utf-8" in NON_ASCII_NOTE
    plain = start_tracker("--workers", workers, "--message", "plain words")
    assert plain.stop() == 0
    assert "not ASCII" not in plain.stderr()


def test_ctrl_c_ends_the_clients_progress_line(
    start_tracker: TrackerFactory, tmp_path: Path
) -> None:
    """On a terminal the client draws a progress bar with \\r; interrupted (SIGINT, what
    Ctrl-C sends), it ends that line, so that the shell's prompt starts on a line of
    its own, and exits 130."""
    words = tmp_path / "words.txt"
    words.write_text(" ".join(f"w{i}" for i in range(20_000)))
    t = start_tracker("--db", str(words), "--chunk", "1")  # (1-byte pieces: slow)
    master, slave = pty.openpty()
    p = subprocess.Popen(
        [sys.executable, "-m", "cs457p2p", "client", "--tracker", t.address],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    # (the test keeps its copy of the terminal open until it has read everything: once
    # no one holds it, Linux may answer EIO before the last bytes reach the reader)
    shown = b""

    def read(until: float) -> bytes:
        ready, _, _ = select.select([master], [], [], max(0.0, until - time.monotonic()))
        try:
            return os.read(master, 4096) if ready else b""
        except OSError:  # (EIO: the client closed its end)
            return b""

    try:
        end = time.monotonic() + 20
        while b" items" not in shown and time.monotonic() < end:
            shown += read(end)
        assert re.search(rb"\r\[[#.]+\] \d+/20000 items", shown), shown
        p.send_signal(signal.SIGINT)
        assert p.wait(10) == 130
        end = time.monotonic() + 10
        while not shown.endswith(b"\n") and (chunk := read(end)):
            shown += chunk
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
        os.close(slave)
    assert re.search(rb"\d+/20000 items\r?\n$", shown), shown[-100:]  # (a pty writes \r\n)
    assert b"Traceback" not in shown
    assert p.stdout is not None and p.stdout.read() == b""


@pytest.mark.parametrize(
    ("peers", "joining", "hold"),
    [("1", "1 peer joining", "the peer holds"), ("3", "3 peers joining", "all 3 peers hold")],
)
def test_demo_counts_its_peers_in_words(
    run_cli: CliRunner, peers: str, joining: str, hold: str
) -> None:
    r = run_cli("demo", "--peers", peers, timeout=60)
    assert (r.returncode, r.stdout) == (0, REFERENCE_MESSAGE + "\n"), r.stderr
    first, second, third = r.stderr.splitlines()
    assert first.endswith(f" (16 items); {joining}"), first
    assert second.startswith(f"demo: {hold} the message "), second
    assert " items from neighbours " in second and ", from the tracker " in second
    # (what no peer hosts comes from the tracker, and the demo says so)
    assert third.startswith(f"demo: {16 - int(peers)} of the 16 items are hosted by no peer"), third
