"""A Part 2 peer on asyncio: a server and a fetcher around one
:class:`~cs457p2p.core.peer_state.PeerState`, which decides everything with
:mod:`~cs457p2p.core.peer_rounds` (what an exchange brought) and
:mod:`~cs457p2p.core.peer_port` (what its port answers): this module moves bytes, wakes
when the state's :meth:`~PeerState.next_timer` says, and words what the core decided.

* The server answers what comes to the peer's port: each connection runs
  :class:`~cs457p2p.core.connection_rules.ConnectionRules` with the peer's
  :class:`~cs457p2p.core.peer_port.PeerPort` (one message alone: its
  answer, then close, as the course's programs expect; several: every answer, in
  order), so a peer has the tracker's limits against slow or flooding senders; and
  the tracker's admission (:class:`~cs457p2p.core.admission.Admission`): at most
  ``max_connections`` open, ``max_per_address`` from one address, the busiest address
  giving way to a newcomer when all are taken, the open-files limit raised to the hard
  one. What goes wrong on a connection is counted (:attr:`Peer.errors`), never
  printed.
* The fetcher sends what the state says (REGISTER, and again when its talk with the
  tracker says; the QUERYs of each ask, all on one connection or, for a target the
  state found answers one and closes, one a connection, as many at once as the ask
  says; HELD reports), and tells it what came back (a round of one-QUERY connections
  as :func:`~cs457p2p.core.peer_rounds.round_answers` says; what went over the memory
  limit as :func:`~cs457p2p.core.peer_rounds.over_limit` says).
* Every outgoing connection leaves from the peer's listen address (peers on 127.0.0.2,
  127.0.0.3... are distinct hosts to the tracker) and carries whole messages, written
  at once; every exchange, connection and whole answers, is bounded by ``timeout``
  however the bytes trickle in, and reads no more than
  :func:`~cs457p2p.core.peer_rounds.read_limit` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from ..core.admission import Admission
from ..core.answers import AnswerParser
from ..core.connection_rules import ABORT, CLOSE, ConnectionRules
from ..core.errors import RemoteProtocolError
from ..core.peer_port import PeerPort, port_limits
from ..core.peer_rounds import (
    END,
    MAX_MESSAGE,
    Answer,
    over_limit,
    query_answers,
    read_limit,
    round_answers,
)
from ..core.peer_state import (
    REFUSED,
    TOO_MANY,
    TRACKER,
    Ask,
    PeerState,
)
from ..core.peer_talk import BROKEN, LOST, SILENT, tracker_addresses
from ..core.trace import ConnectionTrace, peer_name
from ..core.wire2 import (
    BadMessage,
    Message,
    Query,
    RegInit,
    Said,
    encode_message,
    parse,
)
from ..net import describe_os_error, loop_error_kind, raise_fd_limit, source_address
from ..waits import wait_for
from .config import Address, PeerConfig

__all__ = ["Peer", "PeerConfig", "PeerError"]


class PeerError(Exception):
    """The peer cannot take part: the tracker is unreachable or refused it."""


Event = Callable[[str, str], None]


def _quiet(kind: str, text: str) -> None:
    pass


class Peer:
    """:meth:`start` (listen, register), then :meth:`run` until the message is whole
    (and on, serving, until :meth:`close`). ``on_event(kind, text)`` hears progress:
    ``registered``, ``items`` (where some came from), ``done``, ``missing``, ``error``."""

    def __init__(self, config: PeerConfig, on_event: Event = _quiet) -> None:
        self.config = config
        self.state = PeerState(
            config.handle,
            patience=config.patience,
            pace=config.pace,
            max_bytes=config.max_message,
            max_items=config.max_items,
        )
        self.responder = PeerPort(self.state)  # (what its port answers)
        self.limits = port_limits(config.timeout)
        self.admission = Admission(config.max_connections, config.max_per_address)
        self._open: dict[asyncio.StreamWriter, tuple[str, ConnectionRules]] = {}
        #: connections to its port turned away (over a limit), and evicted
        self.refused = 0
        self.evicted = 0
        #: what went wrong, by kind (a connection's error, the loop's): counted, not printed
        self.errors: Counter[str] = Counter()
        self.on_event = on_event
        self.address: Address = ("", 0)
        self.done = asyncio.Event()
        self._poke = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._told_missing = False

    # ------------------------------------------------------------------ lifecycle

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def start(self) -> None:
        """Listen, then register with the tracker; :class:`PeerError` if it cannot."""
        cfg = self.config
        raise_fd_limit()
        host = cfg.listen_host
        if host is None:
            try:
                host = source_address(*cfg.tracker)
            except OSError as e:
                raise PeerError(f"cannot reach the tracker: {describe_os_error(e)}") from None
        try:
            self._server = await asyncio.start_server(self._serve, host, cfg.listen_port)
        except OSError as e:
            raise PeerError(
                f"cannot listen on {host}:{cfg.listen_port}: {describe_os_error(e)}"
            ) from None
        sockname = self._server.sockets[0].getsockname()
        self.address = (str(sockname[0]), int(sockname[1]))
        self.state.tracker_addresses = await _addresses_of(cfg.tracker[0])
        await self._register()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await wait_for(self._server.wait_closed(), 1.0)
        for task in list(self._handlers):
            task.cancel()

    async def _register(self) -> None:
        """REGISTER as the state's talk with the tracker says (again only after a
        refused connection or one closed without an answer); :class:`PeerError` when
        the tracker cannot be reached, is silent for ``--timeout``, or refuses."""
        cfg, state = self.config, self.state
        talk = state.register(self.address[1])
        while True:
            join = talk.next_register()
            if join is None:
                await self._sleep_until(state.next_timer())
                state.on_timer(self.now())
                continue
            try:
                replies = await self._exchange(cfg.tracker, [join], want=1)
            except asyncio.TimeoutError:
                how, why = SILENT, ""
            except (ConnectionRefusedError, ConnectionResetError) as e:
                how, why = LOST, _why(e)
            except (OSError, RemoteProtocolError) as e:
                how, why = BROKEN, _why(e)
            else:
                if replies:
                    break
                how, why = LOST, "closed the connection without an answer"
            if talk.register_failed(how, self.now()):
                self.on_event("error", f"REGISTER: {why}; trying again")
                continue
            if how == SILENT:
                raise PeerError(
                    f"the tracker did not answer REGISTER within {cfg.timeout:g} s (--timeout)"
                )
            raise PeerError(f"cannot register with the tracker: {why}")
        reply = replies[0]
        bad = state.counters.bad_neighbours
        verdict = state.reg_init(reply, self.now())
        if verdict == REFUSED or not isinstance(reply, RegInit):
            if isinstance(reply, Said):
                said = reply.text
            elif isinstance(reply, BadMessage):
                said = f"not a REG_INIT ({reply.reason})"
            else:
                said = f"not a REG_INIT ({type(reply).__name__})"
            raise PeerError(f"the tracker refused REGISTER: {said}")
        if verdict == TOO_MANY:
            raise PeerError(
                f"the tracker says N = {reply.n:,}, more than the limit of"
                f" {cfg.max_items:,} (--max-items)"
            )
        nbr = state.neighbour
        where = f"{nbr.handle} at {nbr.ip}:{nbr.port}" if nbr else "none given"
        if state.counters.bad_neighbours > bad:
            where = f"none ({reply.nbr_ip!r:.40} port {reply.nbr_port} cannot be one)"
        self.on_event(
            "registered",
            f"registered as {cfg.handle} on {self.address[0]}:{self.address[1]};"
            f" neighbour {where}; N = {reply.n}; hosting {reply.item}",
        )
        await self._probe_tracker()

    async def _probe_tracker(self) -> None:
        """Is the tracker ours (it answers the state's probe)? Then it hears HELD."""
        talk = self.state.talk
        assert talk is not None
        try:
            replies = await self._exchange(self.config.tracker, [self.state.probe()], want=1)
        except (OSError, asyncio.TimeoutError, RemoteProtocolError):
            replies = []
        talk.probed(replies)

    async def _sleep_until(self, when: float | None) -> None:
        """Until ``when`` (None: until poked), or a poke (an UPDATE_NBR) comes."""
        self._poke.clear()
        timeout = None if when is None else max(0.0, when - self.now())
        with contextlib.suppress(asyncio.TimeoutError):
            await wait_for(self._poke.wait(), timeout)

    # -------------------------------------------------------------------- fetching

    async def run(self) -> None:
        """Fetch until the message is whole (:attr:`done` is set); then return."""
        state = self.state
        while not state.done:
            now = self.now()
            state.on_timer(now)
            ask = state.next_ask(now)
            if ask is not None:
                await self._do(ask)
                await self._report_held()
                continue
            if state.missing and not self._told_missing:
                self._told_missing = True
                shown = ", ".join(map(str, state.missing[:20]))
                more = f" and {len(state.missing) - 20} more" if len(state.missing) > 20 else ""
                self.on_event(
                    "missing",
                    f"no peer and not the tracker has SEQNUM {shown}{more}: waiting for a"
                    " peer that hosts them to join",
                )
            await self._sleep_until(state.next_timer())
        self.done.set()
        self.on_event("done", state.message())  # (the message first, then the report)
        await self._report_held(final=True)

    async def _do(self, ask: Ask) -> None:
        target = self.config.tracker if ask.target == TRACKER else None
        if target is None:
            assert ask.neighbour is not None
            target = ask.neighbour.address
        try:
            results = await self._query(target, ask)
        except (OSError, asyncio.TimeoutError, RemoteProtocolError, ValueError, OverflowError) as e:
            self.state.failed(ask, self.now())
            self.on_event("error", f"asking {_who(ask)}: {_why(e)}")
            return
        got = self.state.answered(ask, results, self.now(), connection=True)
        if got:
            self.on_event("items", f"{got} from {_who(ask)}")
        verdict = over_limit(self.state, ask)
        if verdict is not None:
            limit = f"more than {self.config.max_message:,} characters (--max-message)"
            if verdict == END:
                raise PeerError(f"the tracker's items add up to {limit}")
            self.on_event("error", f"{_who(ask)}'s items would add up to {limit}: ignored")

    async def _query(self, target: Address, ask: Ask) -> list[Answer]:
        """The answers of ``target`` to the QUERYs of ``ask``: all on one connection, or
        one a connection, ``ask.parallel`` at once (a target that answers one and
        closes: the state found it so); a round the core says failed raises its first
        connection's error."""
        seqs = ask.seqs
        if ask.parallel:
            gate = asyncio.Semaphore(ask.parallel)

            async def one(seq: int) -> list[Message | BadMessage]:
                async with gate:
                    return await self._exchange(target, [Query(seq)], want=1)

            found = await asyncio.gather(*(one(s) for s in seqs), return_exceptions=True)
            out = round_answers([None if isinstance(r, BaseException) else r for r in found])
            if out is None:
                assert isinstance(found[0], BaseException)
                raise found[0]
            return out
        replies = await self._exchange(target, [Query(s) for s in seqs], want=len(seqs))
        return query_answers(replies)

    async def _report_held(self, final: bool = False) -> None:
        """The ``HELD`` the state says is due (to our tracker, for its dashboard)."""
        held = self.state.next_report(self.now(), final)
        if held is None:
            return
        with contextlib.suppress(OSError, asyncio.TimeoutError, RemoteProtocolError):
            await self._exchange(self.config.tracker, [held], want=1)

    async def _exchange(
        self, target: Address, messages: Sequence[Message], want: int
    ) -> list[Message | BadMessage]:
        """One connection to ``target`` from the listen address: every message written
        at once, then up to ``want`` answers read (fewer if it closes first, or once more
        bytes came than :func:`~cs457p2p.core.peer_rounds.read_limit` says). The whole
        exchange must end within ``timeout`` (asyncio.TimeoutError), however the bytes
        trickle in; bytes the restricted decoder refuses raise
        :class:`~cs457p2p.core.errors.RemoteProtocolError`, the one base the fetcher
        catches for what the other side got wrong."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout
        reader, writer = await wait_for(
            asyncio.open_connection(target[0], target[1], local_addr=(self.address[0], 0)),
            self.config.timeout,
        )
        trace = self._traced(writer, initiated=True)
        budget = read_limit(self.state)
        try:
            data = b"".join(encode_message(m) for m in messages)
            writer.write(data)
            if trace is not None:
                trace.sent(data)
            parser = AnswerParser(MAX_MESSAGE)
            values: list[Message | BadMessage] = []
            got = 0
            while len(values) < want and got <= budget:
                left = deadline - loop.time()
                if left <= 0:
                    raise asyncio.TimeoutError
                data = await wait_for(reader.read(1 << 16), left)
                if trace is not None:
                    trace.received(data)
                if not data:
                    break
                got += len(data)
                values.extend(parse(v) for v in parser.feed(data, want - len(values)))
            return values
        finally:
            writer.close()
            if trace is not None:
                trace.closed()

    def _traced(self, writer: asyncio.StreamWriter, initiated: bool) -> ConnectionTrace | None:
        tracer = self.config.trace
        if tracer is None:
            return None
        return tracer.connection(peer_name(writer.get_extra_info("peername")), initiated)

    # ---------------------------------------------------------------------- serving

    def handle_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """An event loop's exception handler (the command installs it): what goes wrong
        is counted by kind (``accept()`` out of open files, a reset...), never printed."""
        self.errors[_kind(context)] += 1

    def _admit(self, host: str) -> bool:
        """Take a connection from ``host`` (True), or turn it away (False, counted): at
        most ``max_per_address`` from one address, ``max_connections`` in all, the
        busiest address giving up its longest silent one to a newcomer."""
        verdict = self.admission.verdict(host)
        if not verdict.accept:
            self.refused += 1
            return False
        if verdict.evict is not None:
            theirs = [(r.last, w) for w, (h, r) in self._open.items() if h == verdict.evict]
            if theirs:
                victim = min(theirs, key=lambda t: t[0])[1]
                self.evicted += 1
                del self._open[victim]
                self.admission.closed(verdict.evict)
                victim.transport.abort()
        self.admission.opened(host)
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host = _host(writer)
        if not self._admit(host):
            writer.transport.abort()
            return
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        loop = asyncio.get_running_loop()
        rules = ConnectionRules(self.limits, self.responder, loop.time(), peer=host)
        self._open[writer] = (host, rules)
        neighbour = self.state.neighbour
        trace = self._traced(writer, initiated=False)
        try:
            while not rules.closed:
                try:
                    data = await wait_for(
                        reader.read(1 << 16), max(0.0, rules.deadline - loop.time())
                    )
                except asyncio.TimeoutError:
                    step = rules.expired(loop.time())
                else:
                    if trace is not None:
                        trace.received(data)
                    step = rules.received(data, loop.time()) if data else rules.ended()
                if step.then == ABORT or (not data and step.then != CLOSE and not step.answers):
                    break  # (after EOF with nothing left to say)
                if step.answers:
                    await _write(writer, step.answers, trace, self.config.timeout)
                if step.then == CLOSE:
                    break
                while rules.has_work and not rules.closed:
                    step = rules.resume(loop.time())
                    if step.answers:
                        await _write(writer, step.answers, trace, self.config.timeout)
                    if step.then != "keep":
                        break
        except (OSError, asyncio.TimeoutError):
            pass
        except Exception as e:  # (counted, never a traceback per connection)
            self.errors[f"error serving a connection ({type(e).__name__})"] += 1
        finally:
            writer.close()
            if trace is not None:
                trace.closed()
            if task is not None:
                self._handlers.discard(task)
            if self._open.pop(writer, None) is not None:
                self.admission.closed(host)
        if self.state.neighbour != neighbour:
            self._poke.set()  # an UPDATE_NBR: ask the new neighbour now


async def _write(
    writer: asyncio.StreamWriter,
    answers: Sequence[bytes | memoryview],
    trace: ConnectionTrace | None,
    timeout: float,
) -> None:
    data = b"".join(answers)
    writer.write(data)
    if trace is not None:
        trace.sent(data)
    await wait_for(writer.drain(), timeout)


async def _addresses_of(host: str) -> frozenset[str]:
    """The addresses the tracker at ``host`` may speak from, as the core's
    :func:`~cs457p2p.core.peer_talk.tracker_addresses` says of those ``host`` resolves
    to (none: it cannot be resolved, any sender is taken)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return frozenset()
    return tracker_addresses(str(info[4][0]) for info in infos)


def _host(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    host = str(peer[0]) if peer else ""
    return host[7:] if host.startswith("::ffff:") and "." in host else host


def _kind(context: dict[str, Any]) -> str:
    """What an event loop's error was, in a few words (for :attr:`Peer.errors`)."""
    return loop_error_kind(context)


def _who(ask: Ask) -> str:
    if ask.target == TRACKER or ask.neighbour is None:
        return "the tracker"
    return f"{ask.neighbour.handle} ({ask.neighbour.ip}:{ask.neighbour.port})"


def _why(e: BaseException) -> str:
    if isinstance(e, asyncio.TimeoutError):
        return "no answer in time"
    if isinstance(e, OSError):
        return describe_os_error(e)
    return str(e)
