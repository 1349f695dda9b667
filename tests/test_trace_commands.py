"""``--trace`` on the real commands: ``client`` (TCP against our tracker and a
reference-style one, UDP), ``tracker`` and ``peer``. Each message is one line on stderr,
and what one side says it sent is what the other says it received."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from conftest import CLI, ClientRunner, TrackerFactory, TrackerProcess
from standins import REFERENCE_MESSAGE, ReferenceTracker

#: trace ARROW TRANSPORT PEER N B BYTES: WHAT
LINE = re.compile(
    r"^trace (?P<arrow><-|->) (?P<transport>tcp|udp) (?P<peer>\S+) (?P<size>\d+) B"
    r" (?P<shown>.*?): (?P<what>.*)$"
)
RUN = 30.0


def traced(stderr: str) -> list[re.Match[str]]:
    """The trace lines of ``stderr`` (every one must parse)."""
    lines = [line for line in stderr.splitlines() if line.startswith("trace ")]
    matches = [LINE.match(line) for line in lines]
    assert all(matches), [line for line, m in zip(lines, matches, strict=True) if not m]
    return [m for m in matches if m is not None]


def whats(lines: list[re.Match[str]], arrow: str) -> list[str]:
    return [m["what"] for m in lines if m["arrow"] == arrow]


def _items(lines: list[re.Match[str]], arrow: str) -> set[int]:
    found = (re.match(r"item \((\d+), ", w) for w in whats(lines, arrow))
    return {int(m[1]) for m in found if m}


def _positions(lines: list[re.Match[str]], arrow: str) -> set[int]:
    found = (re.match(r"position (\d+) ", w) for w in whats(lines, arrow))
    return {int(m[1]) for m in found if m}


def _stop(t: TrackerProcess) -> str:
    t.stop()
    return t.stderr()


def test_client_and_tracker_trace_the_same_messages(
    start_tracker: TrackerFactory, run_client: ClientRunner
) -> None:
    t = start_tracker("--trace")
    r = run_client(t.address, "--trace")
    assert r.returncode == 0, r.stderr
    assert r.stdout == REFERENCE_MESSAGE + "\n"
    client = traced(r.stderr)
    assert len(client) == len(r.stderr.splitlines())  # (no progress bar with --trace)
    assert client[0].group(0) == (f"trace -> tcp {t.address} 8 B b'REGISTER': REGISTER [raw bytes]")
    assert client[1].group(0) == (
        f"trace <- tcp {t.address} 5 B b'\\x80\\x02K\\x10.': N = 16 [pickle protocol 2]"
    )
    assert {m["peer"] for m in client} == {t.address}
    assert _positions(client, "->") == set(range(16))
    assert _items(client, "<-") == set(range(16))
    tracker = traced(_stop(t))
    assert _positions(tracker, "<-") == set(range(16))
    assert _items(tracker, "->") == set(range(16))
    # What one side sent, the other received (the bytes as shown, message by message).
    sent = Counter((m["shown"], m["what"]) for m in client if m["arrow"] == "->")
    got = Counter((m["shown"], m["what"]) for m in tracker if m["arrow"] == "<-")
    assert sent == got
    answered = Counter((m["shown"], m["what"]) for m in tracker if m["arrow"] == "->")
    assert answered == Counter((m["shown"], m["what"]) for m in client if m["arrow"] == "<-")


def test_client_trace_against_a_reference_style_tracker(run_client: ClientRunner) -> None:
    """One request per connection (the one-shot threads), protocol 0 answers."""
    with ReferenceTracker() as ref:
        r = run_client(f"127.0.0.1:{ref.port}", "--trace")
    assert r.returncode == 0 and r.stdout == REFERENCE_MESSAGE + "\n", r.stderr
    lines = traced(r.stderr)
    assert _positions(lines, "->") >= set(range(16))
    assert _items(lines, "<-") == set(range(16))
    assert all(w.endswith("[pickle protocol 0 or 1]") for w in whats(lines, "<-") if "item" in w)


def test_the_course_tracker_traced(start_tracker: TrackerFactory, run_client: ClientRunner) -> None:
    """``tracker --course --trace``: Python 2's protocol 0 answers, one connection at a
    time, as the course's tracker writes them."""
    t = start_tracker("--course", "--trace")
    r = run_client(t.address, "--trace")
    assert r.returncode == 0, r.stderr
    lines = traced(_stop(t))
    assert lines[0]["what"] == "REGISTER [raw bytes]"
    assert lines[1]["shown"] == "b'I16\\n.'" and lines[1]["what"].startswith("N = 16 [")
    answers = [w for w in whats(lines, "->") if w.startswith("item (")]
    assert answers and all(w.endswith("[pickle protocol 0 or 1]") for w in answers)


def test_client_trace_over_udp(start_tracker: TrackerFactory, run_client: ClientRunner) -> None:
    t = start_tracker()
    r = run_client(t.address, "--trace", "--transport", "udp")
    assert r.returncode == 0 and r.stdout == REFERENCE_MESSAGE + "\n", r.stderr
    lines = traced(r.stderr)
    assert {m["transport"] for m in lines} == {"udp"}
    assert lines[0]["what"] == "REGISTER [raw bytes]"
    assert _positions(lines, "->") >= set(range(16))
    assert _items(lines, "<-") == set(range(16))


@contextlib.contextmanager
def _peer(
    tracker: TrackerProcess, handle: str, host: str, folder: Path
) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A peer with --trace; its stderr goes to a file (a pipe nobody reads while the
    other peer runs would fill up and stop it)."""
    err = folder / f"{handle}.err"
    args = ["--tracker", tracker.address, "--handle", handle, "--listen", host, "--patience", "1"]
    with open(err, "w") as stderr:
        p = subprocess.Popen(
            [*CLI, "peer", *args, "--trace", "--linger", "1.5"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        yield p, err
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=10)


def test_peer_and_tracker_trace_part2(start_tracker: TrackerFactory, tmp_path: Path) -> None:
    """Two peers: REGISTER and REG_INIT, the UPDATE_NBR the second one causes, QUERYs
    and their answers both ways, the tracker's PINGs and the peers' answers."""
    t = start_tracker("--trace", "--ping-interval", "0.3")
    with _peer(t, "alice", "127.0.0.2", tmp_path) as (alice, alice_err):
        time.sleep(0.3)
        with _peer(t, "bob", "127.0.0.3", tmp_path) as (bob, bob_err):
            out_b, _ = bob.communicate(timeout=RUN)
        out_a, _ = alice.communicate(timeout=RUN)
    err_a, err_b = alice_err.read_text(), bob_err.read_text()
    # (the tracker's ring serves the course's five items: three come from the tracker)
    assert out_a == out_b == "blue skies and snowy peaks\n", (err_a[-2000:], err_b[-2000:])
    a, b = traced(err_a), traced(err_b)
    assert whats(a, "->")[0].startswith("('REGISTER', 'alice', ")
    assert whats(a, "<-")[0].startswith("('REG_INIT', 'alice', '127.0.0.2', ")
    # bob's joining tells alice her new neighbour; the tracker PINGs, alice answers
    assert any(w.startswith("('UPDATE_NBR', 'bob', '127.0.0.3', ") for w in whats(a, "<-"))
    assert any(w.startswith("('PING', ") for w in whats(a, "<-"))
    assert "('PING', 'alice') [pickle protocol 2]" in whats(a, "->")
    # bob asks alice (his neighbour) and she answers; each side traces its own end
    asked = [m for m in b if m["arrow"] == "->" and m["what"].startswith("('QUERY', ")]
    assert any(m["peer"].startswith("127.0.0.2:") for m in asked)
    served = [m for m in a if m["arrow"] == "<-" and m["what"].startswith("('QUERY', ")]
    assert any(m["peer"].startswith("127.0.0.3:") for m in served)
    assert any(w.startswith("('QUERY_RESULT', (") for w in whats(b, "<-"))
    tracker = traced(_stop(t))
    told = whats(tracker, "->")
    assert any(w.startswith("('REG_INIT', ") for w in told)
    assert any(w.startswith("('UPDATE_NBR', 'bob', ") for w in told)
    assert any(w.startswith("('PING', ") for w in told)
    assert any(w.startswith("('REGISTER', 'bob', ") for w in whats(tracker, "<-"))


def test_without_trace_nothing_is_traced(
    start_tracker: TrackerFactory, run_client: ClientRunner
) -> None:
    t = start_tracker()
    r = run_client(t.address, "--quiet")
    assert r.returncode == 0 and r.stderr == ""
    assert "trace " not in _stop(t)
