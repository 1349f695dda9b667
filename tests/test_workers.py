"""``cs457p2p tracker --workers N``: real processes on 127.0.0.1.

Which worker holds a socket is read from the kernel: ``/proc/net/tcp`` and
``/proc/net/udp`` give each socket on the tracker's port (its state, remote port and
inode) and ``/proc/PID/fd`` says which process holds that inode. Linux only, as
``--workers`` is.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from conftest import (
    ClientRunner,
    ClientSpawner,
    CliRunner,
    TrackerFactory,
    TrackerProcess,
)
from cs457p2p.tracker.app import RING_OFF
from standins import error_line, reference_fetch, wait_for

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="--workers is Linux only (SO_REUSEPORT)"
)

#: States in /proc/net/tcp.
ESTABLISHED, LISTEN = "01", "0A"
REGISTER_ANSWER_16 = b"\x80\x02K\x10."


# --------------------------------------------------------------------- /proc helpers


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: state, ppid, ... (None: gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and int(fields[1]) == pid and fields[0] != "Z":
                children.append(int(entry))
    return sorted(children)


def exited(pid: int) -> bool:
    """The process is gone, or a zombie (it has exited; its new parent, if it was
    orphaned, has yet to reap it)."""
    fields = _stat_fields(pid)
    return fields is None or fields[0] == "Z"


def socket_holders(pids: list[int]) -> dict[int, set[int]]:
    """Socket inode -> the processes among ``pids`` holding it open."""
    holders: dict[int, set[int]] = {}
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(fd_dir / fd)
            except OSError:
                continue
            m = re.fullmatch(r"socket:\[(\d+)\]", target)
            if m:
                holders.setdefault(int(m[1]), set()).add(pid)
    return holders


@dataclass(frozen=True)
class NetRow:
    state: str
    remote_port: int
    inode: int


def sockets_on_port(kind: str, port: int) -> list[NetRow]:
    """The IPv4 sockets (``kind``: tcp or udp) whose local port is ``port``. Rows with
    inode 0 are left out: no process holds them (TIME_WAIT, left by an earlier
    connection of another test that had this port; they made this test flaky)."""
    rows = []
    for line in Path(f"/proc/net/{kind}").read_text().splitlines()[1:]:
        f = line.split()
        local, remote, state, inode = f[1], f[2], f[3], int(f[9])
        if int(local.split(":")[1], 16) == port and inode != 0:
            rows.append(NetRow(state, int(remote.split(":")[1], 16), inode))
    return rows


def one_holder_each(rows: list[NetRow], workers: list[int]) -> list[int]:
    """The worker holding each socket of ``rows``; fails if one is held by none or by
    several (a socket shared by inheritance, rather than each worker's own)."""
    holders = socket_holders(workers)
    found = []
    for row in rows:
        held_by = holders.get(row.inode, set())
        assert len(held_by) == 1, (row, held_by)
        found.extend(held_by)
    return found


class WorkerPids(Protocol):
    def __call__(self, tracker: TrackerProcess) -> list[int]: ...


@pytest.fixture
def worker_pids(start_tracker: TrackerFactory) -> Iterator[WorkerPids]:
    """``worker_pids(tracker)``: the tracker's worker processes. Any of them still running
    when the test ends is killed before the tracker is stopped (a worker that outlived
    its tracker would hold the tracker's stderr open)."""
    seen: list[int] = []

    def pids(tracker: TrackerProcess) -> list[int]:
        found = children_of(tracker.proc.pid)
        seen.extend(found)
        return found

    yield pids
    for pid in seen:
        if not exited(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def words_db(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A 1,000-word database file and its message."""
    message = " ".join(f"word{i}" for i in range(1000))
    path = tmp_path / "words.txt"
    path.write_text(message)
    yield path, message


# ------------------------------------------------------------------------------ tests


def test_workers_1_is_one_process(
    start_tracker: TrackerFactory, run_client: ClientRunner, worker_pids: WorkerPids
) -> None:
    t = start_tracker()  # the default: --workers 1
    assert worker_pids(t) == []
    r = run_client(t.address, "-q")
    assert r.returncode == 0, r.stderr


def test_clients_spread_over_workers_all_get_the_exact_message(
    start_tracker: TrackerFactory,
    spawn_client: ClientSpawner,
    words_db: tuple[Path, str],
    worker_pids: WorkerPids,
) -> None:
    """No --shuffle-seed: the stored order is random, so every worker must serve the
    parent's one copy. A reference-style fetch (one connection per position, 1,000
    connections over both workers) and pipelining and UDP clients from several source
    addresses would see conflicting SEQNUMs otherwise."""
    path, message = words_db
    t = start_tracker("--workers", "2", "--db", str(path))
    assert t.first_line == f"listening on 127.0.0.1:{t.port} (1000 items)\n"
    assert len(worker_pids(t)) == 2
    procs = [
        spawn_client(t.address, "-q"),
        spawn_client(t.address, "-q", "--bind", "127.0.0.2"),
        spawn_client(t.address, "-q", "--bind", "127.0.0.3"),
        spawn_client(t.address, "-q", "--transport", "udp"),
        spawn_client(t.address, "-q", "--transport", "udp", "--bind", "127.0.0.2"),
        spawn_client(t.address, "-q", "--transport", "udp", "--bind", "127.0.0.3"),
    ]
    reference: list[str | BaseException] = []

    def fetch() -> None:
        try:
            reference.append(reference_fetch("127.0.0.1", t.port))
        except BaseException as e:  # reported below
            reference.append(e)

    threads = [threading.Thread(target=fetch, daemon=True) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert reference == [message, message]
    for p in procs:
        out, err = p.communicate(timeout=30)
        assert (p.returncode, out, err) == (0, message + "\n", ""), p.args
    assert t.alive()


def test_port_0_every_worker_serves_the_printed_port_on_both_transports(
    start_tracker: TrackerFactory, worker_pids: WorkerPids
) -> None:
    """Checked as soon as the listening line is out: every worker is listening by then."""
    t = start_tracker("--workers", "3")
    workers = worker_pids(t)
    assert len(workers) == 3
    tcp = sockets_on_port("tcp", t.port)
    udp = sockets_on_port("udp", t.port)
    assert [r.state for r in tcp] == [LISTEN] * 3, tcp
    assert len(udp) == 3, udp
    assert sorted(one_holder_each(tcp, workers)) == workers
    assert sorted(one_holder_each(udp, workers)) == workers


@pytest.mark.parametrize("transport", ["both", "udp"])
def test_a_port_held_by_workers_is_refused_to_other_workers(
    start_tracker: TrackerFactory, run_cli: CliRunner, worker_pids: WorkerPids, transport: str
) -> None:
    """Same user, both with SO_REUSEPORT: the kernel would let a second tracker join the
    port and take half the traffic (with its own shuffle). It is refused, as a
    one-process tracker is."""
    t = start_tracker("--workers", "2", "--transport", transport)
    workers = worker_pids(t)
    r = run_cli(
        "tracker", "--host", "127.0.0.1", "--port", str(t.port), "--workers", "2",
        "--transport", transport, timeout=15,
    )  # fmt: skip
    assert r.returncode == 1
    assert error_line(r.stderr) == (
        f"cs457p2p tracker: error: cannot listen on 127.0.0.1:{t.port}: Address already in use"
    )
    kind = "udp" if transport == "udp" else "tcp"
    assert sorted(one_holder_each(sockets_on_port(kind, t.port), workers)) == workers
    assert t.alive()


def test_tcp_connections_are_spread_over_the_workers(
    start_tracker: TrackerFactory, worker_pids: WorkerPids
) -> None:
    """24 connections held open: the kernel hands each to one worker's own listening
    socket, and both workers get some (all on one: probability 2**-23)."""
    t = start_tracker("--workers", "2", "--transport", "tcp")
    workers = worker_pids(t)
    assert sorted(one_holder_each(sockets_on_port("tcp", t.port), workers)) == workers
    conns = [
        socket.create_connection(
            ("127.0.0.1", t.port), timeout=5, source_address=(f"127.0.0.{2 + k % 3}", 0)
        )
        for k in range(24)
    ]
    try:
        ports = {c.getsockname()[1] for c in conns}

        def accepted() -> list[NetRow]:
            return [
                r
                for r in sockets_on_port("tcp", t.port)
                if r.state == ESTABLISHED and r.remote_port in ports
            ]

        def all_accepted() -> bool:
            holders = socket_holders(workers)
            rows = accepted()
            return len(rows) == len(conns) and all(r.inode in holders for r in rows)

        assert wait_for(all_accepted, 10), accepted()
        by = one_holder_each(accepted(), workers)
        assert set(by) == set(workers), {w: by.count(w) for w in workers}
    finally:
        for c in conns:
            c.close()
    assert t.alive()


def test_udp_datagrams_are_spread_over_the_workers(
    start_tracker: TrackerFactory, worker_pids: WorkerPids
) -> None:
    """One worker stopped (SIGSTOP): of REGISTERs from 32 sockets, the running worker
    answers its share at once and the stopped one's wait in its own socket until it is
    continued. The parent takes a stopped worker for a live one."""
    t = start_tracker("--workers", "2", "--transport", "udp")
    workers = worker_pids(t)
    assert sorted(one_holder_each(sockets_on_port("udp", t.port), workers)) == workers
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(32)]
    answers: dict[socket.socket, bytes] = {}

    def collect(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while len(answers) < len(socks) and (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([s for s in socks if s not in answers], [], [], left)
            for s in ready:
                answers[s] = s.recv(65535)

    try:
        os.kill(workers[0], signal.SIGSTOP)
        try:
            for s in socks:
                s.bind(("127.0.0.1", 0))
                s.sendto(b"REGISTER", ("127.0.0.1", t.port))
            collect(1.0)
            at_once = len(answers)
        finally:
            os.kill(workers[0], signal.SIGCONT)
        collect(10.0)
    finally:
        for s in socks:
            s.close()
    assert 0 < at_once < len(socks), at_once
    assert list(answers.values()) == [REGISTER_ANSWER_16] * len(socks)
    assert t.alive()
    assert worker_pids(t) == workers


def test_faults_apply_in_every_worker(
    start_tracker: TrackerFactory, run_client: ClientRunner, words_db: tuple[Path, str]
) -> None:
    path, message = words_db
    t = start_tracker(
        "--workers", "2", "--db", str(path),
        "--loss", "0.1", "--duplicate", "0.1", "--reorder", "0.1", "--delay", "1:1",
        "--chunk", "7", "--fault-seed", "7",
    )  # fmt: skip
    assert t.first_line == (
        f"listening on 127.0.0.1:{t.port} (1000 items; faults: loss=0.1 duplicate=0.1"
        " reorder=0.1 delay=1:1ms chunk=7 seed=7)\n"
    )
    for args in (["--bind", "127.0.0.2"], ["--bind", "127.0.0.3"], ["--transport", "udp"]):
        r = run_client(t.address, "-q", *args, timeout=30)
        assert (r.returncode, r.stdout) == (0, message + "\n"), r.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_stops_every_worker_and_exits_0(
    start_tracker: TrackerFactory,
    run_client: ClientRunner,
    sig: signal.Signals,
    worker_pids: WorkerPids,
) -> None:
    t = start_tracker("--workers", "3")
    workers = worker_pids(t)
    assert len(workers) == 3
    assert run_client(t.address, "-q").returncode == 0
    assert t.stop(sig) == 0
    # The parent reaps every worker before it exits: not even a zombie is left.
    assert [w for w in workers if Path(f"/proc/{w}").exists()] == []
    assert t.stderr() == t.first_line + f"note: {RING_OFF}\n"


def test_a_killed_parent_leaves_no_worker_behind(
    start_tracker: TrackerFactory, worker_pids: WorkerPids
) -> None:
    """SIGKILL gives the parent no chance to stop them: each worker sees the end of a
    pipe only the parent held, and stops by itself."""
    t = start_tracker("--workers", "2")
    workers = worker_pids(t)
    assert len(workers) == 2
    t.kill()
    assert wait_for(lambda: all(exited(w) for w in workers), 10), [
        (w, _stat_fields(w)) for w in workers
    ]


def test_a_worker_that_dies_stops_the_tracker_with_one_line(
    start_tracker: TrackerFactory, worker_pids: WorkerPids
) -> None:
    t = start_tracker("--workers", "2")
    workers = worker_pids(t)
    victim, other = workers
    os.kill(victim, signal.SIGKILL)
    assert t.proc.wait(10) == 1
    lines = t.stderr().splitlines()
    assert lines[0] == t.first_line.rstrip("\n")
    assert lines[1] == f"note: {RING_OFF}"
    assert len(lines) == 3, lines
    assert re.fullmatch(
        rf"cs457p2p tracker: error: worker [12] of 2 \(pid {victim}\) was killed by SIGKILL;"
        r" stopped the other workers",
        lines[2],
    ), lines[2]
    assert not Path(f"/proc/{other}").exists()  # stopped and reaped


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--http", "127.0.0.1:0"], ["--http", "--workers 1"]),
        (["--log-level", "info"], ["--log-level info", "--workers 1"]),
        (["--log-level", "debug"], ["--log-level debug", "--workers 1"]),
        ([], ["--workers", "at least 1"]),
    ],
    ids=["http", "info-logs", "debug-logs", "zero-workers"],
)
def test_options_that_need_one_process_are_refused(
    run_cli: CliRunner, args: list[str], words: list[str]
) -> None:
    workers = "0" if not args else "2"
    r = run_cli("tracker", "--host", "127.0.0.1", "--port", "0", "--workers", workers, *args)
    assert (r.returncode, r.stdout) == (2, "")
    line = error_line(r.stderr)
    assert line.startswith("cs457p2p tracker: error: ")
    assert all(w in line for w in words), line


@pytest.mark.parametrize("how", ["no-SO_REUSEPORT", "not-linux"])
def test_without_so_reuseport_workers_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    from cs457p2p.cli.main import main

    def no_fork() -> int:
        raise AssertionError("forked")

    monkeypatch.setattr(os, "fork", no_fork)
    if how == "no-SO_REUSEPORT":
        monkeypatch.delattr(socket, "SO_REUSEPORT")
    else:
        monkeypatch.setattr(sys, "platform", "darwin")
    code = main(["tracker", "--host", "127.0.0.1", "--port", "0", "--workers", "2"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    line = error_line(err)
    assert "SO_REUSEPORT" in line and "--workers 1" in line, line
