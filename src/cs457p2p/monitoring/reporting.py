"""Structured logs, and the periodic tick that drives a tracker's
:class:`~cs457p2p.core.monitor.Monitor` (the I/O half of monitoring; the dashboard's HTTP
side is in ``dashboard.py``).

Log lines go to stderr, ``text`` or ``json``, one per event:

* ``register`` / ``finished`` / ``refused`` (a request answered ``'Bad request'``, with
  the reason, and why in words) / ``summary`` (every ``summary_interval`` seconds, and
  at shutdown): level INFO;
* Part 2: ``join`` / ``refresh`` / ``prune`` / ``peer_finished``, and ``refused`` for a
  message the ring refused: level INFO;
* ``refused_connections`` (the tracker was full) and ``suppressed`` (events dropped
  because more than a few hundred came in half a second): level WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from ..core.monitor import Monitor, TrackerCounters
from ..core.requests import Request
from ..core.ring import RingEvent

__all__ = [
    "LOGGER",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "SUMMARY_INTERVAL",
    "JsonFormatter",
    "Reporter",
    "TextFormatter",
    "log_event",
    "setup_logging",
]

LOGGER = "cs457p2p"
LOG_FORMATS = ("text", "json")
#: Seconds between two summary lines of the log.
SUMMARY_INTERVAL = 60.0
LOG_LEVELS = ("debug", "info", "warning", "error")
#: Seconds between two ticks of the monitor (and two dashboard updates).
TICK = 0.5
_WARNING_EVENTS = frozenset({"refused_connections", "suppressed"})


def _timestamp(created: float) -> str:
    t = time.gmtime(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(created % 1 * 1000):03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


def _time(record: logging.LogRecord, fields: dict[str, Any]) -> str:
    t = fields.pop("time", None)
    return _timestamp(t if isinstance(t, float) else record.created)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (when the event happened, UTC), ``level``,
    ``event`` and the event's fields (or ``message`` for a line that is not an
    event)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        line: dict[str, Any] = {
            "time": _time(record, fields),
            "level": record.levelname.lower(),
        }
        if fields:
            line.update(fields)
        else:
            line["event"] = "message"
            line["message"] = record.getMessage()
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=True, default=str)


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text and all(c.isprintable() and not c.isspace() and c not in "\"'=" for c in text):
        return text
    return json.dumps(text, ensure_ascii=True)


class TextFormatter(logging.Formatter):
    """``TIME LEVEL EVENT key=value ...``; values with spaces or odd characters are
    quoted and escaped as JSON strings, so one event is always one line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        head = f"{_time(record, fields)} {record.levelname.lower()}"
        if not fields:
            text = f"{head} {_text_value(record.getMessage())}"
        else:
            event = fields.pop("event", "event")
            pairs = " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
            text = f"{head} {event} {pairs}".rstrip()
        if record.exc_info:
            text += " error=" + _text_value(self.formatException(record.exc_info))
        return text


def setup_logging(
    fmt: str = "text", level: str = "warning", stream: TextIO | None = None
) -> logging.Logger:
    """The ``cs457p2p`` logger, writing ``fmt`` lines at ``level`` and above to
    ``stream`` (stderr)."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    if level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}")
    logger = logging.getLogger(LOGGER)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(getattr(logging, level.upper()))
    logger.propagate = False
    return logger


def log_event(logger: logging.Logger, fields: dict[str, Any]) -> None:
    level = logging.WARNING if fields.get("event") in _WARNING_EVENTS else logging.INFO
    if logger.isEnabledFor(level):
        logger.log(level, "%s", fields.get("event", ""), extra={"fields": fields})


class _GuardedObserver:
    """The monitor as the tracker sees it: a bug in the monitor must not break the
    connection it was observing (it is logged once, and counted)."""

    __slots__ = ("errors", "logger", "monitor")

    def __init__(self, monitor: Monitor, logger: logging.Logger) -> None:
        self.monitor = monitor
        self.logger = logger
        self.errors = 0

    def observe(
        self,
        peer: Any,
        transport: str,
        requests: Sequence[Request],
        answers: int,
        bytes_in: int,
        bytes_out: int,
        latency: float,
    ) -> None:
        try:
            self.monitor.observe(peer, transport, requests, answers, bytes_in, bytes_out, latency)
        except Exception:
            self.errors += 1
            if self.errors == 1:
                self.logger.exception("monitor failed to observe a batch (logged once)")


class _GuardedRingListener:
    """The monitor as the ring sees it (``Ring.listener``): a bug in the monitor must
    not break the ring's answer (it is logged once, and counted)."""

    __slots__ = ("errors", "logger", "monitor")

    def __init__(self, monitor: Monitor, logger: logging.Logger) -> None:
        self.monitor = monitor
        self.logger = logger
        self.errors = 0

    def __call__(self, event: RingEvent) -> None:
        try:
            self.monitor.ring_event(event)
        except Exception:
            self.errors += 1
            if self.errors == 1:
                self.logger.exception("monitor failed to record a ring event (logged once)")


class Reporter:
    """Drives a monitor from the tracker's loop: a tick every :data:`TICK` seconds takes
    the tracker's counters, writes the pending events as log lines and, every
    ``summary_interval`` seconds, a summary; listeners (the dashboard) are woken after
    each tick. :attr:`observer` is what the tracker is given to call (its
    ``observer``), :attr:`ring_listener` what its ring is (its ``listener``)."""

    def __init__(
        self,
        monitor: Monitor,
        logger: logging.Logger,
        counters: Callable[[], TrackerCounters],
        summary_interval: float = SUMMARY_INTERVAL,
    ) -> None:
        self.monitor = monitor
        self.logger = logger
        self.counters = counters
        self.summary_interval = summary_interval
        self.ticks = 0
        self.closed = False
        self._task: asyncio.Task[None] | None = None
        self._next_summary = 0.0
        self._tick_event = asyncio.Event()
        self.observer = _GuardedObserver(monitor, logger)
        self.ring_listener = _GuardedRingListener(monitor, logger)

    def start(self) -> None:
        self._next_summary = self.monitor.clock() + self.summary_interval
        self._task = asyncio.get_running_loop().create_task(self._run())

    def next_tick(self) -> asyncio.Event:
        """An event set after the next tick (or at close)."""
        return self._tick_event

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                self.tick()
            except Exception:  # a bug here must not stop the monitoring, nor the tracker
                self.logger.exception("monitor tick failed")

    def tick(self) -> None:
        now = self._flush()
        if now >= self._next_summary:
            self._next_summary = now + self.summary_interval
            log_event(self.logger, self.monitor.summary())
        self.ticks += 1
        self.wake()

    def _flush(self) -> float:
        monitor = self.monitor
        monitor.tick(self.counters())
        now = monitor.now
        events, suppressed = monitor.drain_events()
        for fields in events:
            log_event(self.logger, fields)
        if suppressed:
            log_event(self.logger, {"event": "suppressed", "count": suppressed})
        return now

    def wake(self) -> None:
        """Wake the listeners now."""
        event, self._tick_event = self._tick_event, asyncio.Event()
        event.set()

    async def close(self) -> None:
        """Stop ticking; write what is pending; wake the listeners one last time."""
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._flush()
        log_event(self.logger, self.monitor.summary())
        self.wake()
