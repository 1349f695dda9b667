"""End to end, in headless Chromium: the dashboard page loads, then real clients fetch
from the tracker, and the page shows them finished and a non-zero request rate without
being reloaded.

Needs Debian's ``chromium`` and Playwright's Python package (never its own browser
download). Skipped when either is missing on a developer's machine; under CI
(``CI=true``, where ``.ci/run`` installs both) a missing one fails the test instead.
Set ``DASHBOARD_SCREENSHOT=docs/dashboard.png`` to keep the screenshot there.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import CLI, ClientSpawner, TrackerFactory
from cs457p2p.core.wire import REGISTER, encode_position
from test_dashboard import dashboard_port, send_garbage

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FINISHERS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
ITEMS = 3000
WORDS = " ".join(f"word{k}" for k in range(ITEMS))


def _playwright() -> Any:
    """Playwright's sync API, or skip (fail under CI) when it or Chromium is missing."""
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
        missing.append("the playwright Python package")
    if not os.path.exists(CHROMIUM):
        missing.append(CHROMIUM + " (Debian's chromium package)")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; .ci/run should have installed it", pytrace=False)
        pytest.skip(message)
    return sync_playwright


def fetch_half(port: int, bind: str, n: int) -> None:
    """A client that registers and then fetches only half the positions."""
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(bind, 0)) as s:
        s.sendall(REGISTER)
        assert s.recv(100)
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(bind, 0)) as s:
        s.sendall(b"".join(encode_position(i) for i in range(n // 2)))
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass


@pytest.mark.timeout(120)
def test_the_page_follows_three_clients_without_a_reload(
    start_tracker: TrackerFactory, spawn_client: ClientSpawner, tmp_path: Path
) -> None:
    sync_playwright = _playwright()
    tp = start_tracker("--http", "127.0.0.1:0", "--message", WORDS, "--shuffle-seed", "7")
    url = f"http://127.0.0.1:{dashboard_port(tp)}/"
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url, wait_until="load", timeout=15_000)
            page.wait_for_function(
                "() => document.querySelector('#live').textContent === 'live'"
                " && document.querySelector('#items').textContent === '3,000'",
                timeout=10_000,
            )
            assert page.text_content("#stat-finished") == "0"
            assert page.locator("#clients tbody tr").count() == 0
            page.evaluate("() => { window.notReloaded = true; }")

            clients = [spawn_client(tp.address, "--bind", host, "--quiet") for host in FINISHERS]
            fetch_half(tp.port, "127.0.0.5", ITEMS)
            send_garbage(tp.port, b"GET / HTTP/1.0\r\n\r\n")
            for c in clients:
                out, err = c.communicate(timeout=30)
                assert c.returncode == 0, err
                assert out == WORDS + "\n"

            page.wait_for_function(
                """() => {
                    const rows = document.querySelectorAll('#clients tbody tr');
                    const done = document.querySelectorAll(
                        '#clients tbody tr[data-finished="true"]');
                    return document.querySelector('#stat-finished').textContent === '3'
                        && done.length === 3 && rows.length === 5
                        && parseFloat(document.querySelector('#stat-rate').dataset.value) > 0;
                }""",
                timeout=15_000,
            )
            assert page.evaluate("() => window.notReloaded") is True
            finished = page.eval_on_selector_all(
                '#clients tbody tr[data-finished="true"]',
                "rows => rows.map(r => r.dataset.address)",
            )
            assert sorted(finished) == list(FINISHERS)
            half = page.locator('#clients tbody tr[data-address="127.0.0.5"]')
            assert half.locator(".count").text_content() == "1,500 / 3,000"
            assert half.locator(".finished-cell").text_content() == "no"
            bad = page.locator('#clients tbody tr[data-address="127.0.0.1"]')
            assert bad.locator(".has-bad").text_content() == "1"
            assert "refused" in (bad.locator(".reason").text_content() or "")
            assert page.text_content("#stat-fetching") == "1"
            assert float(page.get_attribute("#stat-rate", "data-value") or "0") > 0
            page.wait_for_timeout(1500)  # a few more points on the chart
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            keep = os.environ.get("DASHBOARD_SCREENSHOT")
            if keep:
                shutil.copyfile(shot, keep)
        finally:
            browser.close()
    assert errors == []  # no script error, no blocked resource
    assert tp.stop() == 0


@pytest.mark.timeout(120)
def test_the_page_draws_the_ring_live(start_tracker: TrackerFactory, tmp_path: Path) -> None:
    """Peers join: the ring appears, in ring order, each peer filled with what it holds;
    one is killed: the tracker prunes it within a PING round and the page follows.
    ``DASHBOARD_RING_SCREENSHOT=docs/dashboard-ring.png`` keeps the screenshot."""
    sync_playwright = _playwright()
    tp = start_tracker("--http", "127.0.0.1:0", "--ping-interval", "1", "--ping-timeout", "0.5")
    url = f"http://127.0.0.1:{dashboard_port(tp)}/"
    errors: list[str] = []
    peers: list[subprocess.Popen[bytes]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url, wait_until="load", timeout=15_000)
            page.wait_for_function(
                "() => document.querySelector('#live').textContent === 'live'", timeout=10_000
            )
            assert page.is_hidden("#ring")
            for k in range(2, 8):
                argv = [*CLI, "peer", "--tracker", tp.address, "--handle", f"peer{k}"]
                argv += ["--listen", f"127.0.0.{k}", "--quiet"]
                peers.append(
                    subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
                )
            page.wait_for_function(
                """() => {
                    const rows = document.querySelectorAll('#peers tbody tr.done-peer');
                    return rows.length === 6
                        && document.querySelectorAll('#ring-drawing g.peer').length === 6;
                }""",
                timeout=20_000,
            )
            order = page.eval_on_selector_all(
                "#peers tbody tr", "rows => rows.map(r => r.dataset.handle)"
            )
            neighbours = page.eval_on_selector_all(
                "#peers tbody tr", "rows => rows.map(r => r.children[3].textContent)"
            )
            assert sorted(order) == [f"peer{k}" for k in range(2, 8)]
            assert neighbours == [order[-1], *order[:-1]]  # each asks its predecessor
            assert page.locator("#peers .count").first.text_content() == "16 / 16"
            page.evaluate("() => { window.notReloaded = true; }")
            victim = order[2]
            peers[int(victim[4:]) - 2].send_signal(signal.SIGKILL)
            page.wait_for_function(
                f"""() => document.querySelectorAll('#peers tbody tr').length === 5
                    && !document.querySelector('#peers tbody tr[data-handle="{victim}"]')""",
                timeout=15_000,
            )
            after = page.eval_on_selector_all(
                "#peers tbody tr", "rows => rows.map(r => r.children[3].textContent)"
            )
            survivors = [h for h in order if h != victim]
            assert after == [survivors[-1], *survivors[:-1]]  # the ring closed over the gap
            assert page.evaluate("() => window.notReloaded") is True
            assert "1 pruned" in (page.text_content("#ring-note") or "")
            shot = tmp_path / "ring.png"
            page.screenshot(path=str(shot), full_page=True)
            keep = os.environ.get("DASHBOARD_RING_SCREENSHOT")
            if keep:
                shutil.copyfile(shot, keep)
        finally:
            browser.close()
            for peer in peers:
                peer.kill()
                peer.wait(10)
    assert errors == []
