"""The dashboard, /metrics, /api/status, the event stream and the logs of a real
``cs457p2p tracker --http 127.0.0.1:0`` process, with real clients bound to 127.0.0.2,
127.0.0.3 and 127.0.0.4 (each looks like another host). Also the tracker's observer
hook, in process, and the log formatters."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import json
import logging
import os
import pickle
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import CLI, ClientRunner, TrackerFactory, TrackerProcess
from cs457p2p.client import ClientConfig, fetch_message
from cs457p2p.core.database import Database
from cs457p2p.core.decoder import decode, decode_prefix
from cs457p2p.core.monitor import Monitor
from cs457p2p.core.requests import BadRequest, Position, Register, Request, expand_runs
from cs457p2p.core.wire2 import Held, Join, encode_message
from cs457p2p.monitoring.dashboard import MAX_CONNECTIONS
from cs457p2p.monitoring.reporting import (
    JsonFormatter,
    Reporter,
    TextFormatter,
    log_event,
    setup_logging,
)
from cs457p2p.tracker.server import Tracker, TrackerConfig
from standins import REFERENCE_MESSAGE, exchange

DASHBOARD = re.compile(r"^dashboard on http://127\.0\.0\.1:(\d+)/$")
HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
WAIT = 10.0


# ----------------------------------------------------------------------------- helpers


def dashboard_port(tp: TrackerProcess) -> int:
    """The port of the ``dashboard on`` line, which comes right after ``listening on``."""
    line = tp.next_line(5.0)
    m = DASHBOARD.match((line or "").rstrip("\n"))
    assert m is not None, f"second stderr line: {line!r}"
    return int(m[1])


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def status(port: int) -> dict[str, Any]:
    code, _, body = get(port, "/api/status")
    assert code == 200
    data: dict[str, Any] = json.loads(body)
    return data


def metrics(port: int) -> dict[str, float]:
    """Every sample of /metrics, as ``name{label="v",...}`` -> value."""
    code, headers, body = get(port, "/metrics")
    assert code == 200
    assert headers["Content-Type"].startswith("text/plain")
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def wait_for(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def send_garbage(port: int, data: bytes = b"garbage\n") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(4096):
            out += chunk
        return out


def run_three_clients(run_client: ClientRunner, tp: TrackerProcess, *args: str) -> None:
    for host in HOSTS:
        r = run_client(tp.address, "--bind", host, "--quiet", *args)
        assert (r.returncode, r.stdout) == (0, REFERENCE_MESSAGE + "\n"), r.stderr


def log_lines(tp: TrackerProcess) -> list[str]:
    """Stderr after the first line, once the tracker has stopped."""
    assert tp.stop() == 0
    return tp.stderr().splitlines()[1:]


@pytest.fixture
def dash(start_tracker: TrackerFactory) -> Iterator[tuple[TrackerProcess, int]]:
    tp = start_tracker("--http", "127.0.0.1:0")
    yield tp, dashboard_port(tp)


# ------------------------------------------------------------------------ the page


def test_the_dashboard_line_comes_right_after_the_listening_line(
    dash: tuple[TrackerProcess, int],
) -> None:
    tp, port = dash
    assert tp.first_line.startswith("listening on 127.0.0.1:")
    assert port > 0 and port != tp.port
    assert tp.stop() == 0
    assert tp.stderr().splitlines()[1] == f"dashboard on http://127.0.0.1:{port}/"


def test_the_page_and_its_files_are_served(dash: tuple[TrackerProcess, int]) -> None:
    _, port = dash
    code, headers, body = get(port, "/")
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert b'<script src="/app.js"' in body and b'href="/style.css"' in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    code, headers, body = get(port, "/app.js")
    assert code == 200 and "javascript" in headers["Content-Type"]
    assert b"EventSource" in body
    code, headers, _ = get(port, "/style.css")
    assert code == 200 and headers["Content-Type"].startswith("text/css")
    assert get(port, "/nothing-here")[0] == 404
    assert get(port, "/../pyproject.toml")[0] == 404
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/status", method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 405


# --------------------------------------------------------------------- /metrics


def test_metrics_parse_and_move_after_client_runs(
    dash: tuple[TrackerProcess, int], run_client: ClientRunner
) -> None:
    tp, port = dash
    before = metrics(port)
    assert before["cs457p2p_registrations_total"] == 0
    assert before["cs457p2p_items"] == 16
    for kind in ("register", "position", "bad"):
        assert before[f'cs457p2p_requests_total{{kind="{kind}"}}'] == 0
    for kind in ("loss", "duplicate", "reorder", "delay", "chunk", "reset"):
        assert before[f'cs457p2p_faults_injected_total{{kind="{kind}"}}'] == 0
    assert before['cs457p2p_batch_latency_seconds_bucket{le="+Inf"}'] == 0

    run_three_clients(run_client, tp)
    assert send_garbage(tp.port).endswith(b"Bad request.")

    after = metrics(port)
    assert after["cs457p2p_registrations_total"] == 3
    assert after['cs457p2p_requests_total{kind="register"}'] == 3
    assert after['cs457p2p_requests_total{kind="position"}'] == 3 * 16
    assert after['cs457p2p_requests_total{kind="bad"}'] == 1
    assert after["cs457p2p_answers_total"] == 3 * 17 + 1
    assert after["cs457p2p_received_bytes_total"] > 3 * 16 * 4
    assert after["cs457p2p_sent_bytes_total"] > 3 * 16 * 10
    assert after["cs457p2p_accepted_connections_total"] >= 3 * 2 + 1
    assert after["cs457p2p_refused_connections_total"] == 0
    assert after["cs457p2p_open_connections"] >= 0
    assert after["cs457p2p_client_finishes_total"] == 3
    assert after['cs457p2p_clients{state="finished"}'] == 3
    assert after['cs457p2p_clients{state="other"}'] == 1  # 127.0.0.1, garbage only
    count = after["cs457p2p_batch_latency_seconds_count"]
    assert count > 0 and after['cs457p2p_batch_latency_seconds_bucket{le="+Inf"}'] == count
    assert after["cs457p2p_batch_latency_seconds_sum"] > 0
    assert after["process_resident_memory_bytes"] > 0


def test_metrics_in_openmetrics_when_asked(dash: tuple[TrackerProcess, int]) -> None:
    _, port = dash
    code, headers, body = get(port, "/metrics", {"Accept": "application/openmetrics-text"})
    assert code == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_fault_counters_are_reported(
    start_tracker: TrackerFactory, run_client: ClientRunner
) -> None:
    tp = start_tracker("--http", "127.0.0.1:0", "--loss", "0.3", "--fault-seed", "1")
    port = dashboard_port(tp)
    r = run_client(tp.address, "--transport", "udp", "--quiet", "--bind", "127.0.0.2")
    assert r.returncode == 0, r.stderr
    m = metrics(port)
    assert m['cs457p2p_faults_injected_total{kind="loss"}'] > 0
    assert m["cs457p2p_datagrams_total"] > 0
    s = status(port)
    assert s["faults"] == "loss=0.3 seed=1"
    wait_for(lambda: status(port)["faults_injected"]["loss"] > 0, "the loss count in the status")
    (c,) = status(port)["client_list"]
    assert (c["address"], c["transport"], c["finished"]) == ("127.0.0.2", "udp", True)


def test_chunked_answers_are_counted(start_tracker: TrackerFactory) -> None:
    tp = start_tracker("--http", "127.0.0.1:0", "--chunk", "4")
    port = dashboard_port(tp)
    # Reference-style: one answer per connection, each longer than 4 bytes.
    for request in (b"REGISTER", pickle.dumps(3, protocol=2), b"I300\n."):
        with socket.create_connection(("127.0.0.1", tp.port), timeout=5) as s:
            s.sendall(request)
            while s.recv(4096):
                pass
    m = metrics(port)
    assert m['cs457p2p_faults_injected_total{kind="chunk"}'] == 3  # the bad request too
    assert m['cs457p2p_faults_injected_total{kind="delay"}'] == 0
    assert status(port)["faults"] == "chunk=4"


@pytest.mark.parametrize("level", ["info", "warning"])
def test_refused_connections_are_counted_and_logged(
    start_tracker: TrackerFactory, level: str
) -> None:
    tp = start_tracker("--http", "127.0.0.1:0", "--max-connections", "1", "--log-level", level)
    port = dashboard_port(tp)
    with socket.create_connection(("127.0.0.1", tp.port), timeout=5) as held:
        wait_for(lambda: metrics(port)["cs457p2p_open_connections"] == 1, "one open connection")
        with socket.create_connection(("127.0.0.1", tp.port), timeout=5) as refused:
            assert refused.recv(10) == b""  # closed at once
        wait_for(
            lambda: metrics(port)["cs457p2p_refused_connections_total"] == 1,
            "the refused connection in /metrics",
        )
        wait_for(lambda: status(port)["connections"]["refused"] == 1, "it in the status")
        held.close()
    lines = log_lines(tp)
    assert any(" warning refused_connections count=1 " in line for line in lines), lines


# ------------------------------------------------------------------ /api/status


def test_api_status_shows_the_clients(
    dash: tuple[TrackerProcess, int], run_client: ClientRunner
) -> None:
    tp, port = dash
    s = status(port)
    assert s["items"] == 16 and s["listening"] == tp.address
    assert s["faults"] == "" and s["transport"] == "both"
    assert s["client_list"] == [] and s["clients"]["known"] == 0
    run_three_clients(run_client, tp)
    send_garbage(tp.port, b"\x80\x02X\x03\x00\x00\x00abc.")
    wait_for(lambda: status(port)["clients"]["finished"] == 3, "three finished clients")
    s = status(port)
    rows = {c["address"]: c for c in s["client_list"]}
    assert set(rows) == {*HOSTS, "127.0.0.1"}
    for host in HOSTS:
        c = rows[host]
        assert (c["fetched"], c["items"], c["finished"], c["registrations"]) == (16, 16, True, 1)
        assert (c["bad"], c["transport"]) == (0, "tcp")
        assert c["first_seen"] <= c["last_seen"] and c["seconds"] >= 0
    assert rows["127.0.0.1"]["bad"] == 1
    assert rows["127.0.0.1"]["last_bad"] == (
        "got b'\\x80\\x02X\\x03\\x00\\x00\\x00abc.': a pickled str, not a position or REGISTER"
    )  # what arrived, first: what a student sent
    assert s["requests"] == {"total": 52, "register": 3, "position": 48, "bad": 1, "ring": 0}
    wait_for(lambda: status(port)["rate"] > 0, "a non-zero request rate")
    assert any(rate > 0 for _, rate in status(port)["history"])


# ---------------------------------------------------------------------- /events


def read_event(resp: http.client.HTTPResponse) -> dict[str, Any]:
    data = b""
    while True:
        line = resp.readline()
        assert line, "stream ended"
        if line.startswith(b"data: "):
            data += line[6:].rstrip(b"\n")
        elif line == b"\n" and data:
            event: dict[str, Any] = json.loads(data)
            return event


def test_the_event_stream_delivers_the_status_at_every_tick(
    dash: tuple[TrackerProcess, int], run_client: ClientRunner
) -> None:
    tp, port = dash
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/events")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream"
        first = read_event(resp)  # at once
        assert first["items"] == 16 and first["clients"]["known"] == 0
        times = []
        for _ in range(3):
            start = time.monotonic()
            read_event(resp)
            times.append(time.monotonic() - start)
        assert max(times) < 5, times  # a tick is 0.5 s: the stream does not stall
        r = run_client(tp.address, "--bind", "127.0.0.3", "--quiet")
        assert r.returncode == 0
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            event = read_event(resp)
            if event["clients"]["finished"] == 1:
                break
        else:
            raise AssertionError("the stream never showed the finished client")
        assert event["client_list"][0]["address"] == "127.0.0.3"
    finally:
        conn.close()


def test_sigterm_with_a_page_open_exits_promptly(dash: tuple[TrackerProcess, int]) -> None:
    tp, port = dash
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/events")
        resp = conn.getresponse()
        read_event(resp)
        start = time.monotonic()
        assert tp.stop(signal.SIGTERM, timeout=5) == 0
        assert time.monotonic() - start < 3
    finally:
        conn.close()


# ------------------------------------------------------------------------- logs


def test_json_logs_have_one_line_per_event(
    start_tracker: TrackerFactory, run_client: ClientRunner
) -> None:
    # No --http: the logs need neither the dashboard nor its libraries.
    tp = start_tracker("--log-format", "json", "--log-level", "info", "--summary-interval", "0.5")
    r = run_client(tp.address, "--bind", "127.0.0.2", "--quiet")
    assert r.returncode == 0
    send_garbage(tp.port, b"cos\nsystem\n(S'echo hi'\ntR.")
    wait_for(lambda: '"event": "summary"' in tp.stderr(), "a periodic summary")
    lines = log_lines(tp)
    records = [json.loads(line) for line in lines]  # every line is JSON
    for rec in records:
        assert rec["level"] in ("info", "warning")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["time"])
    by_event: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_event.setdefault(rec["event"], []).append(rec)
    (register,) = by_event["register"]
    assert register["client"] == "127.0.0.2" and register["items"] == 16
    assert register["transport"] == "tcp" and register["registrations"] == 1
    (finished,) = by_event["finished"]
    assert finished["client"] == "127.0.0.2" and finished["seconds"] >= 0
    (refused,) = by_event["refused"]
    assert refused["client"] == "127.0.0.1" and refused["closed"] is True
    assert refused["reason"] == (
        "got b\"cos\\nsystem\\n(S'echo hi'\\nt\"...: "
        "refused pickle: refused opcode GLOBAL at byte 0"
    )
    assert refused["why"] == (
        "sent a pickle that would run code (it calls os.system): refused, never run"
    )
    assert len(by_event["summary"]) >= 2  # periodic, and at shutdown
    last = by_event["summary"][-1]
    assert (last["clients"], last["finished"], last["requests"], last["bad"]) == (2, 1, 18, 1)
    assert set(by_event) == {"register", "finished", "refused", "summary"}


def test_text_logs_are_one_line_per_event(
    start_tracker: TrackerFactory, run_client: ClientRunner
) -> None:
    tp = start_tracker("--log-level", "info", "--summary-interval", "3600")
    assert run_client(tp.address, "--bind", "127.0.0.4", "--quiet").returncode == 0
    send_garbage(tp.port, b"\x80\x02X\x05\x00\x00\x00a\nb c.")
    lines = log_lines(tp)
    events = [line.split()[2] for line in lines]
    assert events == ["register", "finished", "refused", "summary"], lines
    assert lines[0].split()[1] == "info"
    assert "client=127.0.0.4 transport=tcp registrations=1 items=16" in lines[0]
    assert "a pickled str, not a position or REGISTER" in lines[2]
    assert 'reason="got b' in lines[2]
    assert r"""why="sent a pickle of the text 'a\\nb c', not a position or REGISTER""" in lines[2]


def test_the_default_log_level_keeps_stderr_quiet(
    dash: tuple[TrackerProcess, int], run_client: ClientRunner
) -> None:
    tp, _ = dash
    run_three_clients(run_client, tp)
    send_garbage(tp.port)
    assert tp.stop() == 0
    assert len(tp.stderr().splitlines()) == 2  # listening on..., dashboard on...


def test_formatters() -> None:
    stream = io.StringIO()
    logger = setup_logging("text", "info", stream)
    try:
        log_event(
            logger,
            {"time": 0.25, "event": "refused", "client": "::1", "reason": 'a\nb "c"', "n": 3},
        )
        log_event(logger, {"event": "suppressed", "count": 2})
        logger.debug("not shown")
        logger.warning("plain message")
        text = stream.getvalue().splitlines()
        assert text[0] == (
            '1970-01-01T00:00:00.250Z info refused client=::1 reason="a\\nb \\"c\\"" n=3'
        )
        assert text[1].endswith(" warning suppressed count=2")
        assert text[2].endswith(' warning "plain message"')
        assert len(text) == 3
        record = logging.LogRecord("x", logging.INFO, "", 0, "hi %s", ("there",), None)
        assert json.loads(JsonFormatter().format(record))["message"] == "hi there"
        record.fields = {"event": "register", "client": "127.0.0.2", "time": 1.5}
        line = json.loads(JsonFormatter().format(record))
        assert line == {
            "time": "1970-01-01T00:00:01.500Z",
            "level": "info",
            "event": "register",
            "client": "127.0.0.2",
        }
        assert TextFormatter().format(record) == (
            "1970-01-01T00:00:01.500Z info register client=127.0.0.2"
        )
    finally:
        setup_logging()  # back to the default: warning, stderr


# --------------------------------------------------------------------- failures


def test_http_without_the_dashboard_extra_is_one_clear_error(tmp_path: Path) -> None:
    # A stand-in aiohttp that is not there: the import fails as if not installed.
    blocker = tmp_path / "aiohttp"
    blocker.mkdir()
    (blocker / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'aiohttp'\", name='aiohttp')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    r = subprocess.run(
        [*CLI, "tracker", "--host", "127.0.0.1", "--port", "0", "--http", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=20,
        env=env,
        check=False,
    )
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1
    assert r.stderr.startswith("cs457p2p tracker: error: --http needs aiohttp and prometheus")
    assert "missing module 'aiohttp'" in r.stderr
    assert r.stderr.endswith(": pip install aiohttp prometheus_client\n")
    # Without --http the tracker runs (and logs) without the libraries.
    p = subprocess.Popen(
        [*CLI, "tracker", "--host", "127.0.0.1", "--port", "0", "--log-level", "info"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert p.stderr is not None
        assert p.stderr.readline().startswith("listening on 127.0.0.1:")
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        if p.stderr is not None:
            p.stderr.close()


def test_a_dashboard_port_in_use_is_one_error_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = subprocess.run(
            [*CLI, "tracker", "--host", "127.0.0.1", "--port", "0", "--http", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1
    assert r.stderr.startswith(
        f"cs457p2p tracker: error: cannot serve the dashboard on 127.0.0.1:{port}:"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--http", "127.0.0.1:http"], "bad port"),
        (["--log-format", "xml"], "invalid choice"),
        (["--log-level", "loud"], "invalid choice"),
        (["--track-clients", "0"], "must be at least 1"),
        (["--summary-interval", "0"], "positive number"),
    ],
)
def test_bad_flags_are_usage_errors(args: list[str], message: str) -> None:
    r = subprocess.run(
        [*CLI, "tracker", *args], capture_output=True, text=True, timeout=20, check=False
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr


# ----------------------------------------------------------- the hook, in process


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def observe(
        self,
        peer: tuple[Any, ...],
        transport: str,
        requests: list[Request],
        answers: int,
        bytes_in: int,
        bytes_out: int,
        latency: float,
    ) -> None:
        self.calls.append((peer, transport, list(requests), answers, bytes_in, bytes_out, latency))


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_the_observer_sees_every_request_once(transport: str) -> None:
    words = " ".join(f"w{k}" for k in range(500))
    db = Database.from_message(words, shuffle_seed=1)

    async def main() -> Recorder:
        tracker = Tracker(db, TrackerConfig(host="127.0.0.1", port=0))
        recorder = Recorder()
        tracker.observer = recorder
        await tracker.start()
        try:
            cfg = ClientConfig(host="127.0.0.1", port=tracker.port, transport=transport)
            result = await fetch_message(cfg)
            assert result.message == words
        finally:
            await tracker.close()
        return recorder

    recorder = asyncio.run(main())
    # Runs of consecutive positions (the fast path) count as their positions.
    requests = expand_runs([r for call in recorder.calls for r in call[2]])
    assert sum(isinstance(r, Register) for r in requests) == 1
    got = {r.index for r in requests if isinstance(r, Position)}
    assert got == set(range(500))
    assert not any(isinstance(r, BadRequest) for r in requests)
    for peer, tr, reqs, answers, bytes_in, bytes_out, latency in recorder.calls:
        assert peer[0] == "127.0.0.1" and tr == transport
        assert 0 < answers <= len(expand_runs(reqs)) and bytes_in > 0 and bytes_out > 0
        assert 0 <= latency < 5
    assert len(recorder.calls) < len(requests)  # pipelined: batches of requests
    # Each batch holds exactly what was answered (over UDP, not the requests that did not
    # fit in the answer datagram: the client asks for those again).
    assert sum(c[3] for c in recorder.calls) == len(requests)


def test_the_observer_sees_only_what_a_datagram_answered() -> None:
    # 100 answers of about 2 kB each: one datagram holds about 30 of them.
    words = [f"{k:03d}" + "x" * 2000 for k in range(100)]
    db = Database.from_message(" ".join(words), shuffle_seed=1)

    async def main() -> tuple[Recorder, bytes]:
        tracker = Tracker(db, TrackerConfig(host="127.0.0.1", port=0, transport="udp"))
        recorder = Recorder()
        tracker.observer = recorder
        await tracker.start()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.setblocking(False)
                s.connect(("127.0.0.1", tracker.port))
                request = b"".join(pickle.dumps(i, protocol=2) for i in range(100))
                s.send(request.ljust(30_000, b" "))  # (padding buys room: 3x the datagram)
                loop = asyncio.get_running_loop()
                data = await asyncio.wait_for(loop.sock_recv(s, 1 << 17), 5)
        finally:
            await tracker.close()
        return recorder, data

    recorder, data = asyncio.run(main())
    answered = 0
    while data:
        _, end = decode_prefix(data, 0, max_size=len(data))
        data = data[end:]
        answered += 1
    assert 10 < answered < 100
    ((_peer, _tr, requests, answers, _in, _out, _lat),) = recorder.calls
    positions = expand_runs(requests)
    assert answers == len(positions) == answered
    assert [p.index for p in positions if isinstance(p, Position)] == list(range(answered))


def test_a_failing_monitor_does_not_break_serving() -> None:
    class Broken(Monitor):
        def observe(self, *args: Any) -> None:
            raise RuntimeError("boom")

    stream = io.StringIO()

    async def main() -> tuple[str, int]:
        tracker = Tracker(Database.default(), TrackerConfig(host="127.0.0.1", port=0))
        reporter = Reporter(
            Broken(16, time.time), setup_logging("json", "warning", stream), tracker.counters
        )
        await tracker.start()
        tracker.observer = reporter.observer
        reporter.start()
        try:
            result = await fetch_message(ClientConfig(host="127.0.0.1", port=tracker.port))
        finally:
            await tracker.close()
            await reporter.close()
        return result.message, reporter.observer.errors

    try:
        message, errors = asyncio.run(main())
    finally:
        setup_logging()
    assert message == REFERENCE_MESSAGE
    assert errors >= 3  # REGISTER, the probe, the rest
    (line,) = stream.getvalue().splitlines()  # logged once
    record = json.loads(line)
    assert record["level"] == "error" and "monitor failed" in record["message"]
    assert "RuntimeError: boom" in record["error"]


def test_no_observer_by_default() -> None:
    assert Tracker(Database.default()).observer is None


def test_the_dashboard_takes_at_most_its_connection_limit(
    dash: tuple[TrackerProcess, int],
) -> None:
    """200 idle connections to the dashboard: those beyond its limit are closed at once
    (they once took descriptors without bound), and it still serves."""
    tp, port = dash
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(200)]
    try:
        closed = 0
        for s in socks:
            s.settimeout(0.05)
            try:
                closed += s.recv(1) == b""
            except TimeoutError:
                pass  # open: kept by the dashboard
            except ConnectionResetError:
                closed += 1
        assert closed >= 200 - MAX_CONNECTIONS, closed
    finally:
        for s in socks:
            s.close()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        wait_for(lambda: _status_ok(conn), "the dashboard to serve again")
    finally:
        conn.close()
    assert exchange("127.0.0.1", tp.port, b"REGISTER") == b"\x80\x02K\x10."  # (the tracker too)


def _status_ok(conn: http.client.HTTPConnection) -> bool:
    try:
        conn.request("GET", "/api/status")
        return conn.getresponse().status == 200
    except OSError:
        conn.close()
        return False


def test_the_ring_in_the_api_and_the_metrics(dash: tuple[TrackerProcess, int]) -> None:
    """Two peers register (played here, each listening), one says what it holds: the
    ring is in /api/ring and the status, in ring order, and in the metrics; the peers
    are not listed among Part 1's clients."""
    tp, port = dash
    listeners = []
    for k, handle in ((2, "alice"), (3, "bob")):
        s = socket.socket()
        s.bind((f"127.0.0.{k}", 0))
        s.listen()
        listeners.append(s)
        with socket.create_connection(
            ("127.0.0.1", tp.port), source_address=(f"127.0.0.{k}", 0)
        ) as c:
            c.sendall(encode_message(Join(handle, s.getsockname()[1])))
            c.shutdown(socket.SHUT_WR)
            assert decode(c.recv(4096))[0] == "REG_INIT"
    with socket.create_connection(("127.0.0.1", tp.port), source_address=("127.0.0.3", 0)) as c:
        c.sendall(encode_message(Held("bob", 4)))
        c.shutdown(socket.SHUT_WR)
        assert decode(c.recv(4096)) == ("[Tracker]", "OK")
    code, headers, body = get(port, "/api/ring")
    assert code == 200 and headers["Content-Type"].startswith("application/json")
    ring = json.loads(body)
    assert ring["size"] == 2 and ring["n"] == 5  # (Part 2: the course's five items)
    assert [(p["handle"], p["neighbour"], p["held"]) for p in ring["peers"]] == [
        ("alice", "bob", None),
        ("bob", "alice", 4),
    ]
    assert ring["peers"][0]["hosted"] == [4, "peaks"]
    assert ring["counters"]["neighbour_updates"] == 1
    wait_for(lambda: status(port).get("ring", {}).get("size") == 2, "the ring in the status")
    assert status(port)["client_list"] == []  # peers are not Part 1 clients
    m = metrics(port)
    assert m["cs457p2p_peers"] == 2
    assert m["cs457p2p_peer_joins_total"] == 2
    assert m["cs457p2p_neighbour_updates_total"] == 1
    assert m['cs457p2p_requests_total{kind="ring"}'] >= 3
    for s in listeners:
        s.close()


# ------------------------------------------------------- Part 2 in the logs; the feed


def join(tracker_port: int, ip: str, handle: str, port: int) -> Any:
    with socket.create_connection(("127.0.0.1", tracker_port), source_address=(ip, 0)) as c:
        c.sendall(encode_message(Join(handle, port)))
        c.shutdown(socket.SHUT_WR)
        return decode(c.recv(4096))


def test_part_2_joins_refreshes_prunes_and_refusals_are_logged_and_in_the_feed(
    start_tracker: TrackerFactory,
) -> None:
    """A peer (played here: a socket that takes PINGs) joins, registers again (a
    refresh), stops listening and is pruned at the next PING; another is refused its
    handle; a client sends text. Each is a log line at info, and a line of the feed in
    words."""
    tp = start_tracker(
        "--http", "127.0.0.1:0", "--log-level", "info", "--summary-interval", "3600",
        "--ping-interval", "0.3", "--ping-timeout", "2",
    )  # fmt: skip
    port = dashboard_port(tp)
    listener = socket.socket()
    listener.bind(("127.0.0.2", 0))
    listener.listen()
    listener.settimeout(0.05)
    peer_port = listener.getsockname()[1]
    stop = threading.Event()

    def take_pings() -> None:  # accepted and closed: a PING answered, as the course's
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, socket.timeout):
                listener.accept()[0].close()

    pinged = threading.Thread(target=take_pings)
    pinged.start()
    try:
        assert join(tp.port, "127.0.0.2", "alice", peer_port)[0] == "REG_INIT"
        assert join(tp.port, "127.0.0.2", "alice", peer_port)[0] == "REG_INIT"  # a refresh
        assert join(tp.port, "127.0.0.3", "alice", 9999) == ("[Tracker]", "Bad request")
    finally:
        stop.set()
        pinged.join(5)
        listener.close()  # the next PING is refused (or reset, if it was under way)
    assert b"Bad request" in send_garbage(tp.port, b"hello")
    wait_for(lambda: status(port)["ring"]["size"] == 0, "alice pruned")

    def feed() -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = json.loads(get(port, "/api/feed")[2])["feed"]
        return lines

    wait_for(lambda: len(feed()) == 5, "five lines in the feed")
    code, headers, body = get(port, "/api/feed")
    assert code == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["size"] == 100
    lines = feed()
    assert [e["kind"] for e in lines[:2]] == ["join", "refresh"]
    assert sorted(e["kind"] for e in lines[2:]) == ["prune", "refused", "refused"]
    where = f"127.0.0.2:{peer_port}"
    by_kind = {e["kind"]: e for e in lines}
    assert by_kind["join"]["who"] == "alice"
    assert by_kind["join"]["text"] == (
        f"joined the ring from {where}; hosts item 4 ('peaks'); asks itself (alone in the ring)"
    )
    assert by_kind["refresh"]["text"] == f"registered again from {where} (a refresh); asks alice"
    assert re.fullmatch(
        r"pruned from the ring \(0 left\): a PING got (connection refused|reset)",
        by_kind["prune"]["text"],
    )
    refused = [(e["who"], e["text"]) for e in lines if e["kind"] == "refused"]
    assert refused == [
        ("127.0.0.3", "asked to join as 'alice', a handle 127.0.0.2 holds"),
        ("127.0.0.1", "sent the text 'hello', not a pickle"),
    ]
    assert all(abs(e["time"] - time.time()) < 60 for e in lines)  # wall-clock times
    wait_for(lambda: status(port)["feed"] == lines, "the feed in the status")

    logged = log_lines(tp)[1:]  # (after the dashboard's line)
    assert [line.split()[2] for line in logged if " prune " not in line] == [
        "join", "refresh", "refused", "refused", "summary",
    ], logged  # fmt: skip
    text = "\n".join(logged) + "\n"
    assert f" info join handle=alice address={where} neighbour=alice hosts=4 peers=1\n" in text
    assert f" info refresh handle=alice address={where} neighbour=alice peers=1\n" in text
    assert (
        ' info refused client=127.0.0.3 transport=tcp handle=alice why="asked to join as'
        " 'alice', a handle 127.0.0.2 holds\" closed=false\n"
    ) in text
    assert "why=\"sent the text 'hello', not a pickle\"" in text
    assert re.search(
        f' info prune handle=alice address={re.escape(where)} why="a PING got'
        ' (connection refused|reset)" peers=0\n',
        text,
    )


def test_the_status_says_the_address_for_students(dash: tuple[TrackerProcess, int]) -> None:
    """The tests' trackers listen on loopback: the page says so, and how to open it."""
    tp, port = dash
    reach = status(port)["reach"]
    assert reach["address"] == f"127.0.0.1:{tp.port}"
    assert reach["scope"] == "loopback" and "--host 0.0.0.0" in reach["note"]
