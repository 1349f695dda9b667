"""The tracker's HTTP dashboard (``cs457p2p tracker --http HOST:PORT``), served by
aiohttp from the tracker's own event loop:

* ``/`` the live page (``static/index.html``, ``style.css``, ``app.js``), which follows
  ``/events``;
* ``/events`` server-sent events: the status as JSON, at once and then after every tick
  of the monitor (twice a second);
* ``/api/status`` the same status as one JSON document;
* ``/api/ring`` the ring of Part 2 peers, in ring order (also in the status, as
  ``ring``);
* ``/api/feed`` the event feed, the last events in words (also in the status, as
  ``feed``);
* ``/metrics`` the counters in the Prometheus text format (or OpenMetrics, if the
  scraper asks for it), from a private ``prometheus_client`` registry.

Needs the ``dashboard`` extra (aiohttp, prometheus_client); the rest of the package
does not import this module unless ``--http`` is given.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

from aiohttp import web
from prometheus_client import ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

from ..core.monitor import FAULT_KINDS, LATENCY_BUCKETS, Monitor, TrackerCounters
from ..core.ring import Ring
from ..net import bind_host
from ..waits import wait_for
from .reporting import Reporter

__all__ = ["Dashboard", "MonitorCollector"]

#: Server-sent-event streams open at once, at most (each is a page on a screen).
MAX_STREAMS = 64
#: HTTP connections open at once, at most (pages, their streams, scrapers): more are
#: closed at once, so that the dashboard cannot take the tracker's descriptors.
MAX_CONNECTIONS = 128
#: Seconds a page may take to read one update before its stream is closed.
WRITE_TIMEOUT = 10.0
STATIC_FILES = {
    "/": ("index.html", "text/html"),
    "/style.css": ("style.css", "text/css"),
    "/app.js": ("app.js", "text/javascript"),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
        " img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class MonitorCollector(Collector):
    """Exposes a monitor's counters and the tracker's own as Prometheus metrics, read
    at scrape time (nothing is updated on the tracker's hot path)."""

    def __init__(
        self,
        monitor: Monitor,
        counters: Callable[[], TrackerCounters],
        ring: Ring | None = None,
    ) -> None:
        self.monitor = monitor
        self.counters = counters
        self.ring = ring

    def collect(self) -> Iterable[Metric]:
        m = self.monitor
        t = self.counters()
        yield GaugeMetricFamily("cs457p2p_items", "Items in the database (N).", value=m.n)
        yield CounterMetricFamily(
            "cs457p2p_registrations", "REGISTER requests answered.", value=m.registrations
        )
        requests = CounterMetricFamily(
            "cs457p2p_requests",
            "Requests received, by kind (bad: answered 'Bad request'; ring: Part 2 messages).",
            labels=["kind"],
        )
        requests.add_metric(["register"], m.registrations)
        requests.add_metric(["position"], m.positions)
        requests.add_metric(["bad"], m.bad)
        requests.add_metric(["ring"], m.ring_messages)
        yield requests
        yield CounterMetricFamily("cs457p2p_answers", "Answers sent.", value=m.answers)
        yield CounterMetricFamily(
            "cs457p2p_received_bytes", "Bytes of requests received.", value=m.bytes_in
        )
        yield CounterMetricFamily(
            "cs457p2p_sent_bytes",
            "Bytes of answers sent (before injected faults).",
            value=m.bytes_out,
        )
        yield GaugeMetricFamily(
            "cs457p2p_open_connections", "TCP connections open.", value=t.open_connections
        )
        yield CounterMetricFamily(
            "cs457p2p_accepted_connections", "TCP connections accepted.", value=t.accepted
        )
        yield CounterMetricFamily(
            "cs457p2p_refused_connections",
            "TCP connections closed at once: --max-connections were open, or their address"
            " had --max-per-address.",
            value=t.refused,
        )
        yield CounterMetricFamily(
            "cs457p2p_evicted_connections",
            "TCP connections closed to make room for another address (the busiest address"
            " gives way when every slot is taken).",
            value=t.evicted,
        )
        dropped = CounterMetricFamily(
            "cs457p2p_dropped_connections",
            "TCP connections dropped: idle (silent or not reading) or slow (a request"
            " took longer than --request-timeout).",
            labels=["reason"],
        )
        dropped.add_metric(["idle"], t.dropped_idle)
        dropped.add_metric(["slow"], t.dropped_slow)
        yield dropped
        yield CounterMetricFamily(
            "cs457p2p_datagrams", "UDP datagrams received.", value=t.datagrams
        )
        yield CounterMetricFamily(
            "cs457p2p_unanswered_datagrams",
            "UDP datagrams left unanswered: not even one answer fits in three times their size.",
            value=t.unanswered_datagrams,
        )
        faults = CounterMetricFamily(
            "cs457p2p_faults_injected", "Faults injected on purpose, by kind.", labels=["kind"]
        )
        for kind in FAULT_KINDS:
            faults.add_metric([kind], t.faults.get(kind, 0))
        yield faults
        counts = m.counts()
        clients = GaugeMetricFamily(
            "cs457p2p_clients",
            "Client addresses in the table, by state (other: never registered nor fetched).",
            labels=["state"],
        )
        clients.add_metric(["fetching"], counts["fetching"])
        clients.add_metric(["finished"], counts["finished"])
        clients.add_metric(["other"], counts["known"] - counts["fetching"] - counts["finished"])
        yield clients
        yield CounterMetricFamily(
            "cs457p2p_client_finishes",
            "Times a client fetched every position since its last REGISTER.",
            value=m.finished_total,
        )
        yield CounterMetricFamily(
            "cs457p2p_forgotten_clients",
            "Clients dropped from the table (least recently seen beyond its size).",
            value=m.forgotten,
        )
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        bounds = (*LATENCY_BUCKETS, float("inf"))
        for bound, count in zip(bounds, m.latency_counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(
            "cs457p2p_batch_latency_seconds",
            "Seconds from a batch of requests arriving to its answers being handed to the"
            " transport (a batch: one read from a connection, or one datagram).",
            buckets=buckets,
            sum_value=m.latency_sum,
        )
        if self.ring is not None:
            yield from _ring_metrics(self.ring)


def _ring_metrics(ring: Ring) -> Iterable[Metric]:
    c = ring.counters
    yield GaugeMetricFamily("cs457p2p_peers", "Peers in the ring (Part 2).", value=len(ring))
    pings = CounterMetricFamily(
        "cs457p2p_pings", "PINGs sent to peers, by result.", labels=["result"]
    )
    for result in ("ok", "failed"):
        pings.add_metric([result], c.pings[result])
    yield pings
    yield CounterMetricFamily(
        "cs457p2p_pruned_peers", "Peers removed for not answering a PING.", value=c.pruned
    )
    yield CounterMetricFamily(
        "cs457p2p_neighbour_updates",
        "UPDATE_NBR messages sent (one to each peer whose neighbour changed).",
        value=c.neighbour_updates,
    )
    yield CounterMetricFamily(
        "cs457p2p_peer_joins", "Peers that joined the ring (refreshes apart).", value=c.joins
    )


def _static(name: str) -> bytes:
    return (resources.files("cs457p2p.monitoring") / "static" / name).read_bytes()


class Dashboard:
    """The HTTP side of a :class:`~cs457p2p.monitoring.reporting.Reporter`."""

    def __init__(
        self,
        reporter: Reporter,
        ring: Ring | None = None,
        ring_view: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.reporter = reporter
        self.monitor = reporter.monitor
        #: the ring's status, for the page and /api/ring (None: no Part 2 here)
        self.ring_view = ring_view
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MonitorCollector(self.monitor, reporter.counters, ring))
        ProcessCollector(registry=self.registry)
        self.streams = 0
        self.port = 0
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._servers: list[asyncio.Server] = []
        #: HTTP connections closed at once: MAX_CONNECTIONS were open
        self.refused = 0
        self._cached: tuple[int, bytes] = (-1, b"")
        self._files = {path: (_static(name), ctype) for path, (name, ctype) in STATIC_FILES.items()}

    # ------------------------------------------------------------------- lifecycle

    def app(self) -> web.Application:
        app = web.Application()
        app.on_response_prepare.append(_security_headers)
        for path in STATIC_FILES:
            app.router.add_get(path, self._file)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/ring", self._ring)
        app.router.add_get("/api/feed", self._feed)
        app.router.add_get("/events", self._events)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port``; return the port."""
        sockets = [tcp for tcp, _ in bind_host(host, port, "tcp")]
        for sock in sockets:
            sock.listen(128)
            sock.setblocking(False)
        runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, keepalive_timeout=15.0
        )
        loop = asyncio.get_running_loop()
        try:
            await runner.setup()
            server = runner.server
            assert server is not None

            def protocol() -> asyncio.BaseProtocol:
                if len(server.connections) >= MAX_CONNECTIONS:
                    self.refused += 1
                    return _Refused()
                return server()

            for sock in sockets:
                self._servers.append(await loop.create_server(protocol, sock=sock))
        except BaseException:
            for sock in sockets:
                sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        """End the event streams, then stop serving."""
        self._closing = True
        self.reporter.wake()
        for server in self._servers:
            server.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._servers.clear()

    # -------------------------------------------------------------------- handlers

    def status_json(self) -> bytes:
        """The status, encoded once per tick however many pages follow it."""
        ticks = self.reporter.ticks
        if self._cached[0] != ticks:
            status = self.monitor.status()
            if self.ring_view is not None:
                status["ring"] = self.ring_view()
            self._cached = (ticks, json.dumps(status).encode())
        return self._cached[1]

    async def _file(self, request: web.Request) -> web.Response:
        body, ctype = self._files[request.path]
        return web.Response(
            body=body, content_type=ctype, charset="utf-8", headers={"Cache-Control": "no-cache"}
        )

    async def _status(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.status_json(),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def _ring(self, request: web.Request) -> web.Response:
        if self.ring_view is None:
            raise web.HTTPNotFound(text="this tracker keeps no ring (Part 2 is off)\n")
        return web.Response(
            body=json.dumps(self.ring_view()).encode(),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def _feed(self, request: web.Request) -> web.Response:
        feed = self.monitor.feed
        body = {
            "size": feed.entries.maxlen if feed is not None else 0,
            "feed": feed.to_json() if feed is not None else [],
        }
        return web.Response(
            body=json.dumps(body).encode(),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, ctype = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(self.registry)
        return web.Response(body=body, headers={"Content-Type": ctype})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if self.streams >= MAX_STREAMS:
            raise web.HTTPServiceUnavailable(text="too many pages open\n")
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        self.streams += 1
        try:
            await response.prepare(request)
            message = b"retry: 1000\n"
            while not self._closing:
                tick = self.reporter.next_tick()
                message += b"data: " + self.status_json() + b"\n\n"
                await wait_for(response.write(message), WRITE_TIMEOUT)
                message = b""
                await tick.wait()
            await wait_for(response.write_eof(), WRITE_TIMEOUT)
        except asyncio.TimeoutError:
            if request.transport is not None:  # a page that stopped reading
                request.transport.abort()
        except ConnectionError:
            pass  # the page went away
        finally:
            self.streams -= 1
        return response


class _Refused(asyncio.Protocol):
    """A connection beyond :data:`MAX_CONNECTIONS`: closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
