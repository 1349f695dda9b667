"""Part 2 under attack, measured with the issue's sizes: the figures of docs/SECURITY.md
(Part 2, round three). Run it against this checkout, and against another one's ``src``
for the figures before a change:

    python bench/ring_attacks.py [--src PATH] [--only NAME,...] [--python2 PATH]

Every process (tracker, peers, client) is ``python -m cs457p2p`` with ``PYTHONPATH``
set to ``--src`` (default: this checkout's). What the bench itself sends and reads goes
through this checkout's restricted decoder. Scenarios (``--only``):

* ``fill``: 1,100 REGISTERs on one connection, then 100 connections of one REGISTER
  from the same address: places taken; a student from another address.
* ``pipelined``: 3,000 REGISTERs of one handle with alternating ports (both
  listening) on one connection: connections the tracker opened.
* ``flood``: a handle registered again and again with alternating ports (both
  listening), 4 connections at a time for 12 s, a classmate registered before it:
  connections the tracker opened (to the classmate and the attacker's ports), its
  open files and memory, and a Part 1 client's time in the middle of it.
* ``classmate``: the same, aimed at a real ``cs457p2p peer`` (``--trace`` counts the
  UPDATE_NBRs that reach it) with ``--ping-timeout 1``: pruned or not.
* ``takeover``: the peer's handle registered from its address with another listening
  port, and with a closed one: where the handle is after a PING round.
* ``hold``: a peer that answers a PING with ``('ACK', handle)`` and keeps the
  connection open: kept or pruned.
* ``idle``: 1,074 idle connections from one address to a peer limited to 1,024 open
  files: tracebacks on its stderr, of 12 QUERYs from elsewhere how many answered,
  pruned within 3 s or not.
* ``port70000``: an UPDATE_NBR naming port 70000, then a genuine one a second later:
  does the peer complete?
* ``drip``: a neighbour answering one byte every 4 s, and a tracker dripping REG_INIT,
  ``--timeout 5``: how long the peer waits (given up at 25 s).
* ``huge``: a neighbour answering 1 MB VALUEs (400 items): the peer's peak memory;
  a tracker saying N = 10,000,000: memory and CPU over 10 s.
* ``register``: a tracker that answers REGISTER after 6 s (``--timeout 5``): REGISTERs
  it received.
* ``course``: 5 course peers (Python 2.7 stand-ins, tests/py2/) around the tracker with
  its defaults, 45 s: how many collected every item.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from ring_parts import (
    CLI,
    ENV,
    FIVE,
    ROOT,
    FakeTracker,
    Lines,
    Listener,
    ack,
    cpu_seconds,
    dripping,
    open_files,
    peer,
    rss_mib,
    say,
    tracker,
)

from cs457p2p.core.answers import AnswerParser
from cs457p2p.core.wire import encode

# ---------------------------------------------------------------------- scenarios


def fill() -> str:
    with tracker() as (port, _, _):
        burst = b"".join(encode(("REGISTER", f"h{k}", 20000 + k)) for k in range(1100))
        start = time.monotonic()
        with socket.socket() as s:
            s.bind(("127.0.0.9", 0))
            s.connect(("127.0.0.1", port))
            s.sendall(burst)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := s.recv(1 << 16):
                got += chunk
        took = time.monotonic() - start
        one = got.count(b"REG_INIT")
        more = sum(
            (say(port, ("REGISTER", f"g{k}", 30000 + k), "127.0.0.9") or ("",))[0] == "REG_INIT"
            for k in range(100)
        )
        student = say(port, ("REGISTER", "student", 9401), "127.0.0.2")
    return (
        f"1,100 REGISTERs on one connection ({len(burst):,} B): {one:,} places in {took:.2f} s;"
        f" then 100 connections from the same address: {more} more; a student from another"
        f" address: {student[0] if student else None}"
    )


def _flood(port: int, seconds: float, src: str, ports: tuple[int, int]) -> int:
    """REGISTERs of 'mallory' alternating ``ports``, 4 connections at a time."""
    sent = [0]
    stop = time.monotonic() + seconds

    def one() -> None:
        k = 0
        while time.monotonic() < stop:
            say(port, ("REGISTER", "mallory", ports[k % 2]), src)
            sent[0] += 1
            k += 1

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sent[0]


def pipelined(count: int = 3000) -> str:
    """``count`` REGISTERs of one handle with alternating ports, on one connection."""
    with tracker() as (port, _, _):
        victim = Listener("127.0.0.2", ack("victim"))
        a, b = Listener("127.0.0.9", ack("mallory")), Listener("127.0.0.9", ack("mallory"))
        say(port, ("REGISTER", "victim", victim.port), "127.0.0.2")
        burst = b"".join(encode(("REGISTER", "m", (a.port, b.port)[k % 2])) for k in range(count))
        with socket.socket() as s:
            s.bind(("127.0.0.9", 0))
            s.connect(("127.0.0.1", port))
            s.sendall(burst)
            s.shutdown(socket.SHUT_WR)
            while s.recv(1 << 16):
                pass
        time.sleep(2.0)
        opened = victim.connections + a.connections + b.connections
        for listener in (victim, a, b):
            listener.close()
    return (
        f"{count:,} REGISTERs of one handle, alternating ports, on one connection"
        f" ({len(burst) / count:.0f} B each): the tracker opened {opened:,} connections"
    )


def flood(seconds: float = 12.0) -> str:
    with tracker() as (port, proc, _):
        victim = Listener("127.0.0.2", ack("victim"))
        a, b = Listener("127.0.0.9", ack("mallory")), Listener("127.0.0.9", ack("mallory"))
        say(port, ("REGISTER", "victim", victim.port), "127.0.0.2")
        say(port, ("REGISTER", "mallory", a.port), "127.0.0.9")
        files0, rss0 = open_files(proc.pid), rss_mib(proc.pid)
        peak = [files0]
        client_took: list[float] = []

        def watch() -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                peak[0] = max(peak[0], open_files(proc.pid))
                time.sleep(0.05)

        def client() -> None:
            time.sleep(seconds / 2)
            start = time.monotonic()
            subprocess.run(
                [*CLI, "client", "--tracker", f"127.0.0.1:{port}", "-q", "--timeout", "60"],
                env=ENV, capture_output=True, check=False, timeout=120,
            )  # fmt: skip
            client_took.append(time.monotonic() - start)

        threads = [threading.Thread(target=watch), threading.Thread(target=client)]
        for t in threads:
            t.start()
        start = time.monotonic()
        sent = _flood(port, seconds, "127.0.0.9", (a.port, b.port))
        took = time.monotonic() - start
        for t in threads:
            t.join()
        time.sleep(1.0)
        opened = victim.connections + a.connections + b.connections
        rss = rss_mib(proc.pid)
        for listener in (victim, a, b):
            listener.close()
    return (
        f"{sent:,} REGISTERs in {took:.1f} s (4 at a time): the tracker opened {opened:,}"
        f" connections ({victim.connections:,} to the classmate, {opened / took:,.0f}/s);"
        f" open files {files0} -> {peak[0]:,} at most; memory {rss0:.0f} -> {rss:.0f} MiB;"
        f" a Part 1 client meanwhile: {client_took[0]:.2f} s"
    )


def classmate(seconds: float = 10.0) -> str:
    args = ("--ping-interval", "2", "--ping-timeout", "1", "--log-level", "info")
    with tracker(*args) as (port, _, log), peer(port, "victim", "127.0.0.2", "--trace") as v:
        err = Lines(v.stderr)
        if err.wait("registered as", 10) is None:
            raise SystemExit(f"the victim did not register: {err.lines}")
        a, b = Listener("127.0.0.9", ack("mallory")), Listener("127.0.0.9", ack("mallory"))
        say(port, ("REGISTER", "mallory", a.port), "127.0.0.9")
        start = time.monotonic()
        sent = _flood(port, seconds, "127.0.0.9", (a.port, b.port))
        took = time.monotonic() - start
        time.sleep(1.0)
        updates = err.count(r"trace <- .*\('UPDATE_NBR'")
        pruned = log.count(r" prune handle=victim ")
        a.close()
        b.close()
    return (
        f"{sent:,} REGISTERs in {took:.1f} s: {updates:,} UPDATE_NBRs reached the classmate's"
        f" peer ({updates / took:,.0f}/s); with --ping-timeout 1 it was"
        f" {'pruned' if pruned else 'kept'}"
    )


def takeover() -> str:
    with tracker("--ping-interval", "1", "--ping-timeout", "1") as (port, _, _):
        alice = Listener("127.0.0.2", ack("alice"))
        thief = Listener("127.0.0.2", ack("thief"))
        say(port, ("REGISTER", "alice", alice.port), "127.0.0.2")
        took = say(port, ("REGISTER", "alice", thief.port), "127.0.0.2")
        time.sleep(1.5)
        bob = say(port, ("REGISTER", "bob", 9402), "127.0.0.3")  # (its neighbour: alice)
        at = bob[3] if bob and bob[1] == "alice" else None
        closed = socket.create_server(("127.0.0.2", 0))
        closed_port = closed.getsockname()[1]
        closed.close()
        say(port, ("REGISTER", "alice", closed_port), "127.0.0.2")
        time.sleep(2.5)
        alive = _in_ring(port, "alice")
        alice.close()
        thief.close()
    where = {alice.port: "alice's", thief.port: "the thief's"}.get(at or 0, str(at))
    return (
        f"the same handle from the same address with another listening port:"
        f" {took[0] if took else None}; after a PING round the handle is at {where} port."
        f" Then with a closed port: alice {'still in the ring' if alive else 'pruned'}"
    )


def _in_ring(port: int, handle: str) -> bool:
    """Is ``handle`` in the ring? (A REGISTER of it from elsewhere is refused.)"""
    got = say(port, ("REGISTER", handle, 9999), "127.0.0.77")
    return bool(got) and got[0] != "REG_INIT"


def hold() -> str:
    release = threading.Event()

    def ack_and_hold(conn: socket.socket, message: Any) -> None:
        if message[0] == "PING":
            conn.sendall(encode(("ACK", "holder")))
            release.wait(10)

    with tracker("--ping-interval", "1", "--ping-timeout", "1") as (port, _, _):
        holder = Listener("127.0.0.2", ack_and_hold)
        say(port, ("REGISTER", "holder", holder.port), "127.0.0.2")
        time.sleep(3.5)
        kept = _in_ring(port, "holder")
        release.set()
        holder.close()
    verdict = "kept" if kept else "pruned"
    return f"a peer that answers ('ACK', handle) and keeps the connection: {verdict}"


def idle() -> str:
    args = ("--ping-interval", "1", "--ping-timeout", "1", "--log-level", "info")
    with (
        tracker("--message", FIVE, *args) as (port, _, log),
        peer(port, "target", "127.0.0.2", "--patience", "0.3", limit_files=1024) as p,
    ):
        err = Lines(p.stderr)
        out = Lines(p.stdout)
        if out.wait(FIVE, 20) is None:
            raise SystemExit(f"the target did not complete: {err.lines}")
        reply = say(port, ("REGISTER", "probe", 9999), "127.0.0.3")
        peer_port = reply[3]
        socks = []
        for _ in range(1074):
            s = socket.socket()
            s.settimeout(1)
            s.bind(("127.0.0.50", 0))
            with contextlib.suppress(OSError):
                s.connect(("127.0.0.2", peer_port))
            socks.append(s)
        time.sleep(3.0)
        answered = sum(
            (say(peer_port, ("QUERY", k % 5), "127.0.0.4", "127.0.0.2") or ("",))[0]
            == "QUERY_RESULT"
            for k in range(12)
        )
        pruned = log.count(r" prune handle=target ")
        tracebacks = err.count("Traceback")
        for s in socks:
            s.close()
    return (
        f"1,074 idle connections from one address, 1,024 open files: {tracebacks:,}"
        f" tracebacks; {answered} of 12 QUERYs from another address answered;"
        f" {'pruned' if pruned else 'kept'} by the tracker (--ping-interval 1 --ping-timeout 1)"
    )


def port70000() -> str:
    words = {1: "world"}

    def items(conn: socket.socket, message: Any) -> None:
        if message[0] == "QUERY":
            seq = message[1]
            conn.sendall(
                encode(("QUERY_RESULT", (seq, words[seq]) if seq in words else (None, None)))
            )

    fake = FakeTracker(encode(("REG_INIT", "y", "127.0.0.7", 1, 2, (0, "hello"))))
    nbr = Listener("127.0.0.40", items)
    with peer(fake.port, "alice", "127.0.0.2", "--patience", "30") as p:
        err, out = Lines(p.stderr), Lines(p.stdout)
        m = err.wait(r"on 127\.0\.0\.2:(\d+)", 10)
        assert m is not None, err.lines
        peer_port = int(m[1])
        say(peer_port, ("UPDATE_NBR", "x", "127.0.0.1", 70000), "127.0.0.1", "127.0.0.2")
        time.sleep(1.0)
        say(peer_port, ("UPDATE_NBR", "nbr", "127.0.0.40", nbr.port), "127.0.0.1", "127.0.0.2")
        done = out.wait("hello world", 10)
    fake.close()
    nbr.close()
    return (
        "an UPDATE_NBR naming port 70000, a genuine one 1 s later: the peer"
        f" {'completed' if done else 'never completed (10 s)'}"
    )


def drip() -> str:
    reg_init = encode(("REG_INIT", "alice", "127.0.0.2", 1, 5, (0, "blue")))
    fake = FakeTracker(dripping(reg_init, 4.0))
    start = time.monotonic()
    with peer(fake.port, "alice", "127.0.0.2", "--timeout", "5") as p:
        try:
            p.wait(25)
            tracker_wait = f"gave up after {time.monotonic() - start:.1f} s"
        except subprocess.TimeoutExpired:
            tracker_wait = "still waiting at 25 s"
    fake.close()
    head = b"\x80\x02X\x0c\x00\x00\x00QUERY_RESULTK\x00X\x40\x42\x0f\x00" + b"x" * 100

    def neighbour(conn: socket.socket, message: Any) -> None:
        if message[0] == "QUERY":
            dripping(head, 4.0)(conn)
        elif message[0] == "PING":
            conn.sendall(encode(("ACK", "drip")))

    nbr = Listener("127.0.0.40", neighbour)
    with tracker("--message", FIVE) as (port, _, _):
        say(port, ("REGISTER", "drip", nbr.port), "127.0.0.40")
        start = time.monotonic()
        with peer(port, "alice", "127.0.0.2", "--timeout", "5") as p:
            out = Lines(p.stdout)
            done = out.wait(FIVE, 25)
            nbr_wait = (
                f"completed after {time.monotonic() - start:.1f} s" if done else "stuck at 25 s"
            )
    nbr.close()
    return (
        f"--timeout 5, a byte every 4 s: a tracker dripping REG_INIT: {tracker_wait}; a"
        f" neighbour dripping its answer: {nbr_wait}"
    )


def huge() -> str:
    value = "v" * 1_000_000

    def liar(conn: socket.socket, _: Any) -> None:
        """Every QUERY of a batch (ours pipelines them): a 1 MB answer."""
        parser = AnswerParser()
        with contextlib.suppress(OSError):
            while data := conn.recv(65536):
                for got in parser.feed(data):
                    m: Any = got
                    if m[0] == "QUERY":
                        conn.sendall(encode(("QUERY_RESULT", (m[1], value))))
                    elif m[0] == "PING":
                        conn.sendall(encode(("ACK", "liar")))

    nbr = Listener("127.0.0.40", liar, raw=True)
    with tracker("--message", " ".join(f"w{k}" for k in range(400))) as (port, _, _):
        say(port, ("REGISTER", "liar", nbr.port), "127.0.0.40")
        with peer(port, "alice", "127.0.0.2", "--patience", "2") as p:
            out = Lines(p.stdout)
            out.wait(".", 60)
            peak = rss_mib(p.pid, "VmHWM")
            line = max((len(x) for x in out.lines), default=0)
            status = p.poll()
    nbr.close()
    big = FakeTracker(encode(("REG_INIT", "x", "127.0.0.1", 1, 10_000_000, (0, "a"))))
    with peer(big.port, "alice", "127.0.0.2") as p:
        time.sleep(10)
        alive = p.poll() is None
        n_rss = rss_mib(p.pid, "VmHWM") if alive else 0.0
        n_cpu = cpu_seconds(p.pid) if alive else 0.0
        err = "" if alive else (p.stderr.read() if p.stderr else "").strip()
    big.close()
    n_text = (
        f"running after 10 s, {n_rss:.0f} MiB peak, {n_cpu:.1f} s of CPU"
        if alive
        else f"refused: {err[-90:]!r}"
    )
    return (
        f"a neighbour answering 1 MB VALUEs (400 items): peak {peak:.0f} MiB, a"
        f" {line:,}-character line (exit status {status}); N = 10,000,000: {n_text}"
    )


def register() -> str:
    def slow(conn: socket.socket) -> None:
        time.sleep(6.0)
        with contextlib.suppress(OSError):
            conn.sendall(encode(("REG_INIT", "alice", "127.0.0.2", 1, 1, (0, "a"))))

    fake = FakeTracker(slow)
    with peer(fake.port, "alice", "127.0.0.2", "--timeout", "5") as p:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(25)
        time.sleep(1)
        err = (p.stderr.read() if p.stderr and p.poll() is not None else "").strip()
    fake.close()
    return (
        f"a tracker answering REGISTER after 6 s, --timeout 5: it received {fake.registers}"
        f" REGISTERs; the peer: {err.splitlines()[-1][:100] if err else 'still running'}"
    )


def course(python2: str) -> str:
    stand_in = ROOT / "tests" / "py2" / "course_peer2.py"
    with tracker() as (port, _, _):
        procs = []
        for k in range(5):
            host = f"127.0.0.{k + 2}"
            with socket.socket() as s:
                s.bind((host, 0))
                free = s.getsockname()[1]
            p = subprocess.Popen(
                [python2, str(stand_in), str(port), "2"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )  # fmt: skip
            assert p.stdin is not None
            p.stdin.write(f"q{k}\n{free}\n{host}\n")
            p.stdin.close()
            procs.append((p, Lines(p.stdout)))
        start = time.monotonic()
        done = [out.wait(".", max(0.1, 45 - (time.monotonic() - start))) for _, out in procs]
        for p, _ in procs:
            p.kill()
            p.wait(10)
    return (
        f"5 course peers (2 s pace) around the tracker's defaults: {sum(map(bool, done))} of"
        " 5 collected every item within 45 s"
    )


SCENARIOS: dict[str, Callable[[], str]] = {
    "fill": fill,
    "pipelined": pipelined,
    "flood": flood,
    "classmate": classmate,
    "takeover": takeover,
    "hold": hold,
    "idle": idle,
    "port70000": port70000,
    "drip": drip,
    "huge": huge,
    "register": register,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--src", default=str(ROOT / "src"), help="the src folder to measure")
    ap.add_argument("--only", default="", help="scenarios, comma-separated (default: all)")
    ap.add_argument("--python2", help="a Python 2.7 interpreter, for the 'course' scenario")
    a = ap.parse_args()
    ENV["PYTHONPATH"] = a.src
    ENV.pop("PYTHONUNBUFFERED", None)
    names = [n for n in a.only.split(",") if n] or [*SCENARIOS, "course"]
    print(f"Part 2 under attack: {a.src}, {os.cpu_count()} cores", flush=True)
    for name in names:
        if name == "course":
            if a.python2 is None:
                print("course: skipped (no --python2)", flush=True)
                continue
            print(f"course: {course(a.python2)}", flush=True)
            continue
        print(f"{name}: {SCENARIOS[name]()}", flush=True)


if __name__ == "__main__":
    main()
