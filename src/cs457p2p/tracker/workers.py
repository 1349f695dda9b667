"""Several tracker processes on one port: ``cs457p2p tracker --workers N``.

The parent loads the database once, then binds for each worker its own sockets on the
one port with ``SO_REUSEPORT`` (after checking that nothing else holds the port; port
0: a free port), so that the kernel spreads TCP connections and UDP flows over the
workers' sockets. Then it forks: every worker holds the parent's database
copy-on-write, so all of them serve the same stored (shuffled) order, whichever worker
a connection lands on, and start-up costs one load. Each worker serves its own
sockets with a :class:`~cs457p2p.tracker.server.Tracker` on its own event loop; its limits
and injected faults apply to its own traffic.

The parent only supervises:

* it calls ``on_ready`` once every worker is serving (the tracker's ``listening on``
  line), not before;
* on SIGINT or SIGTERM it stops every worker (SIGTERM: each drains as the one-process
  tracker does) and returns;
* when a worker exits on its own it stops the others and raises :class:`WorkerFailed`:
  no half-served tracker;
* it never returns while a worker runs, and a worker whose parent is gone (killed:
  the pipe only the parent holds reaches EOF) stops by itself: no orphans.

Linux only: ``SO_REUSEPORT`` elsewhere does not spread connections over the sockets
(or is missing), and :func:`check_reuse_port` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, NoReturn

from ..core.database import Database
from ..net import SocketPair, bind_addresses, close_pairs, passive_addresses, retry_port
from ..waits import wait_for
from .server import Tracker, TrackerConfig

__all__ = [
    "START_TIMEOUT",
    "STOP_GRACE",
    "WorkerFailed",
    "WorkersUnavailable",
    "bind_worker_sockets",
    "check_reuse_port",
    "serve_workers",
]

#: Longest wait for every worker to be serving.
START_TIMEOUT = 30.0
#: Seconds a worker gets to exit, beyond its drain timeout, once told to stop; then it
#: is killed.
STOP_GRACE = 5.0
#: Blocked in the parent from before the first fork until the parent's (and each
#: worker's) handlers are in place, so that none is lost or acted on by default.
_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGCHLD}

#: Runs a worker's main coroutine on the event loop chosen with ``--loop``.
LoopRunner = Callable[[Coroutine[Any, Any, None]], None]


class WorkersUnavailable(Exception):
    """This system cannot run several workers on one port."""


class WorkerFailed(Exception):
    """A worker exited on its own, or did not start; the others have been stopped."""


def check_reuse_port() -> None:
    """Raise :class:`WorkersUnavailable` unless ``SO_REUSEPORT`` spreads connections
    over the sockets bound to a port (Linux 3.9+)."""
    hint = "; use --workers 1"
    if not sys.platform.startswith("linux"):
        raise WorkersUnavailable(
            f"--workers needs Linux's SO_REUSEPORT, which spreads connections over the"
            f" workers; not available on {sys.platform}{hint}"
        )
    option = getattr(socket, "SO_REUSEPORT", None)
    if option is None:
        raise WorkersUnavailable(f"--workers needs SO_REUSEPORT, which this Python lacks{hint}")
    with socket.socket() as s:
        try:
            s.setsockopt(socket.SOL_SOCKET, option, 1)
        except OSError as e:
            raise WorkersUnavailable(
                f"--workers needs SO_REUSEPORT, which this system refuses: {e.strerror or e}{hint}"
            ) from None


def bind_worker_sockets(config: TrackerConfig, workers: int) -> list[list[SocketPair]]:
    """One set of sockets per worker (every address of ``config.host``, both transports
    as asked), all on one port with ``SO_REUSEPORT``.

    The port is first bound once without ``SO_REUSEPORT``, as a one-process tracker
    binds it, and released: so a port that anything holds (another tracker with
    ``--workers`` included, which would otherwise share its traffic with us) is
    refused, and port 0 becomes a free port for every address and both transports.
    If the port is taken in between, port 0 is tried again."""
    addresses = passive_addresses(config.host, config.port)

    def bind(port: int) -> list[list[SocketPair]]:
        probe = bind_addresses(addresses, port, config.transport)
        port = probe[0][0].getsockname()[1]
        close_pairs(probe)
        sets: list[list[SocketPair]] = []
        try:
            for _ in range(workers):
                sets.append(bind_addresses(addresses, port, config.transport, reuse_port=True))
        except OSError:
            for pairs in sets:
                close_pairs(pairs)
            raise
        return sets

    return retry_port(config.port, bind)


def serve_workers(
    db: Database,
    config: TrackerConfig,
    sockets: Sequence[Sequence[SocketPair]],
    run: LoopRunner,
    on_ready: Callable[[], None],
    prog: str = "cs457p2p tracker",
) -> None:
    """Fork one worker per set of ``sockets`` (from :func:`bind_worker_sockets`), each
    serving ``db`` on its own set; call ``on_ready`` once all of them serve; return once
    SIGINT or SIGTERM has stopped them all. Raise :class:`WorkerFailed` when a worker
    exits on its own (the others are stopped first). Closes ``sockets`` in this process.

    Call it from the main thread of a process with no event loop running (it forks)."""
    lifeline_r, lifeline_w = os.pipe()  # only the parent holds the write end
    ready_r, ready_w = os.pipe()  # each worker writes one byte when it serves
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    pids: list[int] = []
    try:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            gc.freeze()  # the collector in a worker leaves the loaded objects' pages shared
            for index in range(len(sockets)):
                pid = os.fork()
                if pid == 0:  # pragma: no cover (runs in the worker; tested as a process)
                    _worker(
                        index,
                        len(sockets),
                        _Worker(db, config, sockets[index], lifeline_r, ready_w, old_mask),
                        (lifeline_w, ready_r),
                        [s for k, s in enumerate(sockets) if k != index],
                        run,
                        prog,
                    )
                pids.append(pid)
        except OSError as e:
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
            raise WorkerFailed(f"cannot start worker {len(pids) + 1}: {e.strerror or e}") from None
        finally:
            gc.unfreeze()
            for own in sockets:
                close_pairs(own)  # the workers hold them now
            os.close(lifeline_r)
            os.close(ready_w)
        supervisor = _Supervisor(pids, ready_r, config.drain_timeout + STOP_GRACE)
        asyncio.run(supervisor.run(on_ready))
    finally:
        os.close(ready_r)
        os.close(lifeline_w)  # (every worker has exited by now)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


# ------------------------------------------------------------------------- a worker


class _Worker:
    """What a worker needs once forked."""

    def __init__(
        self,
        db: Database,
        config: TrackerConfig,
        sockets: Sequence[SocketPair],
        lifeline: int,
        ready: int,
        mask: Iterable[int],
    ) -> None:
        self.db = db
        self.config = config
        self.sockets = sockets
        self.lifeline = lifeline
        self.ready = ready
        self.mask = mask

    async def serve(self) -> None:
        """Serve until SIGINT, SIGTERM or the parent's end; then drain and close."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def orphaned() -> None:  # EOF on the lifeline: the parent is gone
            loop.remove_reader(self.lifeline)
            stop.set()

        loop.add_reader(self.lifeline, orphaned)
        signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)  # handlers in place
        tracker = Tracker(self.db, self.config)  # its own fault decisions
        try:
            await tracker.start(self.sockets)
            os.write(self.ready, b"r")
            os.close(self.ready)
            await stop.wait()
        finally:
            await tracker.close()


def _worker(
    index: int,
    count: int,
    worker: _Worker,
    parent_fds: Sequence[int],
    others: Sequence[Sequence[SocketPair]],
    run: LoopRunner,
    prog: str,
) -> NoReturn:  # pragma: no cover (runs in the worker; tested as a process)
    """The forked worker: close what is not its own, serve, and exit (never return
    into the parent's code)."""
    code = 1
    try:
        for fd in parent_fds:
            os.close(fd)
        for pairs in others:
            close_pairs(pairs)
        run(worker.serve())
        code = 0
    except BaseException as e:
        what = f"{e.strerror or e}" if isinstance(e, OSError) else f"{type(e).__name__}: {e}"
        with contextlib.suppress(Exception):
            sys.stderr.write(f"{prog}: error: worker {index + 1} of {count}: {what}\n")
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


# ---------------------------------------------------------------------- the parent


def describe_status(status: int) -> str:
    """``exited with status 1``, ``was killed by SIGKILL``: a wait status in words."""
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"was killed by {name}"


class _Supervisor:
    """The parent's event loop: readiness, signals, and the workers' exits."""

    def __init__(self, pids: Sequence[int], ready: int, stop_timeout: float) -> None:
        self.pids = list(pids)
        self.live = set(pids)
        self.statuses: dict[int, int] = {}
        self.ready_fd = ready
        self.ready = 0
        self.stop_timeout = stop_timeout
        self.stop_requested = False
        self._wake = asyncio.Event()

    def _name(self, pid: int) -> str:
        return f"worker {self.pids.index(pid) + 1} of {len(self.pids)} (pid {pid})"

    def _reap(self) -> list[int]:
        """Collect the workers that have exited since the last call (their pids)."""
        gone: list[int] = []
        for pid in sorted(self.live):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # (reaped elsewhere: not by us, but gone)
                done, status = pid, 0
            if done:
                self.live.discard(pid)
                self.statuses[pid] = status
                gone.append(pid)
        return gone

    def _signal_live(self, sig: int) -> None:
        for pid in self.live:  # not reaped yet, so the pid is still our child's
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    async def _wait(self, timeout: float | None) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    def _on_stop_signal(self) -> None:
        self.stop_requested = True
        self._wake.set()

    def _on_ready_byte(self) -> None:
        data = os.read(self.ready_fd, 256)
        if not data:  # every worker has closed its end (served, or died)
            asyncio.get_running_loop().remove_reader(self.ready_fd)
        self.ready += len(data)
        self._wake.set()

    async def run(self, on_ready: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_stop_signal)
        loop.add_signal_handler(signal.SIGCHLD, self._wake.set)
        loop.add_reader(self.ready_fd, self._on_ready_byte)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)  # handlers in place
        try:
            failure = await self._serve(on_ready)
            if failure is not None and len(self.pids) > 1:
                failure += "; stopped the other workers"
            failure = await self._stop(failure)
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(self.ready_fd)
        if failure is not None:
            raise WorkerFailed(failure)

    async def _serve(self, on_ready: Callable[[], None]) -> str | None:
        """Until a stop is asked for (None) or a worker fails (what happened)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        announced = False
        while True:
            gone = self._reap()
            if gone:
                pid = gone[0]
                return f"{self._name(pid)} {describe_status(self.statuses[pid])}"
            if self.stop_requested:
                return None
            if not announced and self.ready >= len(self.pids):
                announced = True
                on_ready()
            timeout = None if announced else deadline - loop.time()
            if timeout is not None and timeout <= 0:
                return f"the workers were not all serving within {START_TIMEOUT:g} s"
            await self._wait(timeout)

    async def _stop(self, failure: str | None) -> str | None:
        """Stop every live worker (SIGTERM, then SIGKILL past the timeout) and reap it;
        return the failure to report, if any."""
        loop = asyncio.get_running_loop()
        self._signal_live(signal.SIGTERM)
        deadline = loop.time() + self.stop_timeout
        while True:
            self._reap()
            if not self.live:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                if failure is None:
                    pid = min(self.live)
                    failure = f"{self._name(pid)} did not stop within {self.stop_timeout:g} s"
                self._signal_live(signal.SIGKILL)
                for pid in list(self.live):
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, 0)
                    self.live.discard(pid)
                break
            await self._wait(remaining)
        if failure is None:
            bad = [pid for pid in self.pids if self.statuses.get(pid, 0) != 0]
            if bad:
                failure = f"{self._name(bad[0])} {describe_status(self.statuses[bad[0]])}"
        return failure
