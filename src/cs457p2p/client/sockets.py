"""How a client reaches the tracker over TCP: the tracker's addresses, a socket bound to
``--bind`` and connected to one of them, and a failure to connect said in one line. The
blocking driver connects with these, and moves one exchange's bytes on a blocking
socket with :func:`run_exchange` (its threads for a reference-style tracker too); the
asyncio driver creates its sockets with :func:`new_socket` too. Both connect to the
address that answered REGISTER for the rest of a session. (No asyncio here: the blocking
driver never imports it.)"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Sequence
from typing import Any

from ..core.exchanges import Exchange
from ..core.fetch import ClientConfig, ClientError
from ..core.trace import ConnectionTrace, Tracer, peer_name
from ..net import Target

__all__ = [
    "connect_blocking",
    "connect_error",
    "connect_first",
    "new_socket",
    "numeric_target",
    "resolve",
    "run_exchange",
    "targets_of",
]


def connect_error(error: OSError, config: ClientConfig, address: str) -> ClientError:
    """Why connecting failed, in one line (a TimeoutError: for ``--timeout`` seconds)."""
    if isinstance(error, socket.gaierror):
        return ClientError(f"cannot resolve {config.host!r}: {error.strerror}")
    if isinstance(error, TimeoutError):
        return ClientError(f"timed out after {config.timeout:g} s connecting to {address}")
    if isinstance(error, ConnectionRefusedError):
        return ClientError(f"cannot connect to {address}: connection refused")
    return ClientError(f"cannot connect to {address}: {error.strerror or error}")


def targets_of(infos: Sequence[tuple[Any, ...]]) -> list[Target]:
    """``(family, sockaddr)`` of each ``getaddrinfo`` result, in order."""
    return [(int(info[0]), tuple(info[4])) for info in infos]


def numeric_target(host: str, port: int) -> list[Target] | None:
    """The one address of a numeric IPv4 or IPv6 host, without asking the resolver
    (asyncio's ``getaddrinfo`` runs in a thread: its first use starts one); None for a
    name."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        sockaddr = (host, port) if family == socket.AF_INET else (host, port, 0, 0)
        return [(int(family), sockaddr)]
    return None


def resolve(config: ClientConfig, address: str) -> list[Target]:
    """Every address of the tracker's host, in the resolver's order."""
    numeric = numeric_target(config.host, config.port)
    if numeric is not None:
        return numeric
    try:
        infos = socket.getaddrinfo(config.host, config.port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise connect_error(e, config, address) from None
    except UnicodeError as e:  # (a name IDNA cannot encode)
        raise ClientError(f"cannot resolve {config.host!r}: {e}") from None
    return targets_of(infos)


def new_socket(target: Target, config: ClientConfig, address: str) -> socket.socket:
    """A TCP socket for ``target``, bound to ``--bind`` when one is given."""
    sock = socket.socket(target[0], socket.SOCK_STREAM)
    if config.bind:
        try:
            sock.bind((config.bind, 0))
        except OSError as e:
            sock.close()
            raise ClientError(
                f"cannot connect to {address} from {config.bind}: {e.strerror or e}"
            ) from None
    return sock


def connect_blocking(
    target: Target, config: ClientConfig, address: str, timeout: float | None = None
) -> socket.socket:
    """A blocking socket connected to ``target``, with the session's timeout on every
    later call. OSError if the tracker cannot be reached; :class:`ClientError` if
    ``--bind`` cannot be used."""
    sock = new_socket(target, config, address)
    try:
        sock.settimeout(config.timeout if timeout is None else timeout)
        sock.connect(target[1])
        sock.settimeout(config.timeout)
    except BaseException:
        sock.close()
        raise
    return sock


def connect_first(
    targets: Sequence[Target], config: ClientConfig, address: str
) -> tuple[socket.socket, Target]:
    """Connect to the first of ``targets`` that accepts, all within the session's
    timeout, or raise the :class:`ClientError` that says why the last one did not."""
    error: OSError = OSError("no address")
    deadline = time.monotonic() + config.timeout
    for target in targets:
        left = deadline - time.monotonic()
        if left <= 0:
            error = TimeoutError()
            break
        try:
            return connect_blocking(target, config, address, left), target
        except OSError as e:
            error = e
    raise connect_error(error, config, address)


def run_exchange(
    sock: socket.socket, exchange: Exchange, target: Target, tracer: Tracer | None
) -> None:
    """Write the exchange's request at once on a blocking ``sock`` connected to
    ``target``, then read into ``exchange`` while it wants data, waking at its timer at
    the latest (a wait run out raises its ClientError); the socket is closed after. A
    reset counts as the connection's end: what was not answered is asked again.
    ``tracer`` (--trace) sees the connection's bytes."""
    trace = None if tracer is None else tracer.connection(peer_name(target[1]), True)
    try:
        with contextlib.closing(sock):
            _exchange_on(sock, exchange, trace)
    finally:
        if trace is not None:
            trace.closed()


def _exchange_on(sock: socket.socket, exchange: Exchange, trace: ConnectionTrace | None) -> None:
    request = exchange.request()
    with contextlib.suppress(OSError):
        sock.sendall(request)  # (closed already: the reads below see it)
    if trace is not None:
        trace.sent(request)
    exchange.start(time.monotonic())
    while exchange.wants_data:
        at = exchange.next_timer()
        assert at is not None
        left = at - time.monotonic()
        if left <= 0:
            exchange.on_timer(time.monotonic())
            continue
        sock.settimeout(left)
        try:
            data = sock.recv(1 << 16)
        except TimeoutError:
            exchange.on_timer(time.monotonic())
            continue
        except OSError:  # reset, aborted...
            data = b""
        if trace is not None:
            trace.received(data)
        exchange.receive(data, time.monotonic())
