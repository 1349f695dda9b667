"""End to end, in headless Chromium: the dashboard page follows real clients and peers
of a real tracker without being reloaded, and a lab on a projector sees what it needs
at 1280x900 and at 1920x1080: the address to use, the counts, the ring and what
happened (a peer pruned, a request refused, said in words), with no table column
clipped.

Needs Debian's ``chromium`` and Playwright's Python package (never its own browser
download). Skipped when either is missing on a developer's machine; under CI
(``CI=true``, where ``.ci/run`` installs both) a missing one fails the test instead.
One browser serves every test of the module. ``DASHBOARD_SCREENSHOTS=docs`` keeps the
two screenshots of the lab there (``dashboard-1280.png``, ``dashboard-1920.png``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
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
#: The sizes a lab is run at: a projector's, and a full-HD screen's.
SIZES = ((1280, 900), (1920, 1080))


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


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module (a launch costs about a second)."""
    sync_playwright = _playwright()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def open_page(browser: Any, url: str, width: int, height: int) -> tuple[Any, list[str]]:
    """A page on ``url`` once it is live; and the list its script errors go to."""
    errors: list[str] = []
    page = browser.new_page(viewport={"width": width, "height": height})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="load", timeout=15_000)
    page.wait_for_function(
        "() => document.querySelector('#live').textContent === 'live'", timeout=10_000
    )
    return page, errors


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


def send_from(port: int, bind: str, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(bind, 0)) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):
            pass


@pytest.mark.timeout(120)
def test_the_page_follows_three_clients_without_a_reload(
    browser: Any, start_tracker: TrackerFactory, spawn_client: ClientSpawner
) -> None:
    tp = start_tracker("--http", "127.0.0.1:0", "--message", WORDS, "--shuffle-seed", "7")
    page, errors = open_page(browser, f"http://127.0.0.1:{dashboard_port(tp)}/", 1400, 900)
    try:
        page.wait_for_function(
            "() => document.querySelector('#items').textContent === '3,000'", timeout=10_000
        )
        assert page.text_content("#stat-finished") == "0"
        assert page.locator("#clients tbody tr").count() == 0
        assert page.is_visible("#feed-empty")
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
        http_words = (
            "sent an HTTP request ('GET / HTTP/1.0'), a web browser? The tracker speaks pickles"
        )
        assert bad.locator(".reason").text_content() == http_words
        assert "refused" in (bad.locator(".reason").get_attribute("title") or "")
        assert page.text_content("#stat-fetching") == "1"
        assert float(page.get_attribute("#stat-rate", "data-value") or "0") > 0
        # The feed: three registered and finished, one registered only, one refused.
        page.wait_for_function(
            "() => document.querySelectorAll('#feed li').length === 8", timeout=10_000
        )
        kinds = page.eval_on_selector_all("#feed li", "lis => lis.map(li => li.dataset.kind)")
        assert sorted(kinds) == ["finished"] * 3 + ["refused"] + ["register"] * 4
        refused = page.locator('#feed li[data-kind="refused"]')
        assert refused.locator(".who").text_content() == "127.0.0.1"
        assert refused.locator(".text").text_content() == http_words
        assert page.is_hidden("#feed-empty")
    finally:
        page.close()
    assert errors == []  # no script error, no blocked resource
    assert tp.stop() == 0


#: Every table's wrapper, with how far it and its last column reach, in CSS pixels.
_TABLES = """() => [...document.querySelectorAll('.table-wrap')]
    .filter(w => w.offsetParent !== null)
    .map(w => {
        const last = [...w.querySelectorAll('tr > :last-child')]
            .map(c => c.getBoundingClientRect().right);
        return {id: w.id, scroll: w.scrollWidth, client: w.clientWidth,
                right: w.getBoundingClientRect().right, last: Math.max(...last)};
    })"""

#: The bottom of each thing a lab must see without scrolling, in CSS pixels.
_BOTTOMS = """() => {
    const bottom = (el) => el ? el.getBoundingClientRect().bottom : Infinity;
    const rows = document.querySelectorAll('#peers tbody tr');
    const feed = document.querySelectorAll('#feed li');
    return {
        address: bottom(document.querySelector('#reach-address')),
        counts: bottom(document.querySelector('.cards')),
        ring: bottom(rows[rows.length - 1]),
        drawing: bottom(document.querySelector('#ring-drawing')),
        feed: bottom(feed[Math.min(2, feed.length - 1)]),
    };
}"""


def check_the_lab_fits(page: Any, width: int, height: int) -> None:
    """At ``width`` x ``height``: no table is clipped, nothing scrolls sideways, and
    the address, the counts, the ring and the newest events are all on the screen."""
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_timeout(300)  # (a frame or two to lay out again)
    tables = page.evaluate(_TABLES)
    assert {t["id"] for t in tables} == {"peers-wrap", "clients-wrap"}
    for t in tables:
        assert t["scroll"] <= t["client"], (width, t)  # no scrollbar: no column hidden
        assert t["last"] <= t["right"] + 0.5 <= width + 0.5, (width, t)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    bottoms = page.evaluate(_BOTTOMS)
    for what, bottom in bottoms.items():
        assert bottom <= height, (width, height, what, bottoms)
    # The address is big enough to read from the back of a room.
    size = page.evaluate(
        "() => parseFloat(getComputedStyle(document.querySelector('#reach-address')).fontSize)"
    )
    assert size >= 48, size


@pytest.mark.timeout(120)
def test_a_lab_on_a_projector(browser: Any, start_tracker: TrackerFactory, tmp_path: Path) -> None:
    """Six peers with long addresses join: the ring appears, in ring order, each peer
    filled with what it holds; three clients finish; then one sends text, one a pickle
    that would run code, and a peer is killed and pruned within a PING round. The page follows
    without a reload; its feed says who was pruned and why each request was refused, in
    words; at 1280x900 and 1920x1080 everything a lab needs is on the screen, no table
    column clipped. ``DASHBOARD_SCREENSHOTS=docs`` keeps the screenshots."""
    tp = start_tracker("--http", "127.0.0.1:0", "--ping-interval", "1", "--ping-timeout", "0.5")
    page, errors = open_page(browser, f"http://127.0.0.1:{dashboard_port(tp)}/", 1280, 900)
    peers: list[subprocess.Popen[bytes]] = []
    try:
        address = page.text_content("#reach-address")
        assert address == f"127.0.0.1:{tp.port}"
        assert page.get_attribute("#reach", "data-scope") == "loopback"
        assert "--host 0.0.0.0" in (page.text_content("#reach-note") or "")
        assert page.is_hidden("#ring")
        # The longest loopback addresses there are: the widest cells a lab will see.
        for k in range(2, 8):
            argv = [*CLI, "peer", "--tracker", tp.address, "--handle", f"student{k}"]
            argv += ["--listen", f"127.200.{k}.24{k}", "--quiet"]
            peers.append(
                subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            )
        for k in range(3):
            client = [*CLI, "client", "--tracker", tp.address, "--quiet"]
            done = subprocess.run(
                [*client, "--bind", f"127.100.200.25{k}"], capture_output=True, timeout=30
            )
            assert done.returncode == 0, done.stderr
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
        assert sorted(order) == [f"student{k}" for k in range(2, 8)]
        assert neighbours == [order[-1], *order[:-1]]  # each asks its predecessor
        # (the ring serves the course's five items: all hosted, all from neighbours)
        assert page.locator("#peers .count").first.text_content() == "5 / 5"
        assert page.text_content("#stat-peers") == "6"
        page.evaluate("() => { window.notReloaded = true; }")
        send_from(tp.port, "127.100.200.253", b"hello\n")
        send_from(tp.port, "127.100.200.254", b"cos\nsystem\n(S'echo hi'\ntR.")
        victim = order[2]
        peers[int(victim[7:]) - 2].send_signal(signal.SIGKILL)
        page.wait_for_function(
            f"""() => document.querySelectorAll('#peers tbody tr').length === 5
                && !document.querySelector('#peers tbody tr[data-handle="{victim}"]')
                && document.querySelector('#feed li[data-kind="prune"]')""",
            timeout=15_000,
        )
        after = page.eval_on_selector_all(
            "#peers tbody tr", "rows => rows.map(r => r.children[3].textContent)"
        )
        survivors = [h for h in order if h != victim]
        assert after == [survivors[-1], *survivors[:-1]]  # the ring closed over the gap
        assert page.evaluate("() => window.notReloaded") is True
        assert "1 pruned" in (page.text_content("#ring-note") or "")

        # The feed, newest first: the prune (who, and why), the refusals in words.
        feed = page.eval_on_selector_all(
            "#feed li",
            """lis => lis.map(li => [li.dataset.kind, li.querySelector('.who').textContent,
                                     li.querySelector('.text').textContent])""",
        )
        assert feed[0] == [
            "prune",
            victim,
            "pruned from the ring (5 left): a PING got connection refused",
        ]
        refused = [(who, text) for kind, who, text in feed if kind == "refused"]
        assert refused == [
            (
                "127.100.200.254",
                "sent a pickle that would run code (it calls os.system): refused, never run",
            ),
            ("127.100.200.253", "sent the text 'hello', not a pickle"),
        ]
        joined = [who for kind, who, _ in feed if kind == "join"]
        assert sorted(joined) == sorted(order)
        assert sum(kind == "finished" for kind, _, _ in feed) == 3
        assert sum(kind == "peer_finished" for kind, _, _ in feed) >= 5

        keep = os.environ.get("DASHBOARD_SCREENSHOTS")
        for width, height in SIZES:
            check_the_lab_fits(page, width, height)
            shot = tmp_path / f"dashboard-{width}.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            if keep:
                shutil.copyfile(shot, Path(keep) / shot.name)
    finally:
        page.close()
        for peer in peers:
            peer.kill()
            peer.wait(10)
    assert errors == []
