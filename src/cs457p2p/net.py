"""Sockets, in one place: every address of a host bound on one port (TCP, UDP or both),
the retry that makes port 0 one free port for all of them, a connection failure said
in one line, and which TCP ports something listens on. The tracker, its workers and
the dashboard bind through :func:`bind_host`.

``HOST:PORT`` itself is written and read by :mod:`cs457p2p.core.addresses` (pure text,
so that the sans-I/O core can name addresses too).
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import socket
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = [
    "PORT_ATTEMPTS",
    "SocketPair",
    "Target",
    "bind_addresses",
    "bind_host",
    "can_bind",
    "close_pairs",
    "describe_os_error",
    "free_port",
    "host_addresses",
    "listening_ports",
    "loop_error_kind",
    "loopback_hosts",
    "passive_addresses",
    "raise_fd_limit",
    "retry_port",
    "source_address",
    "unique_addresses",
]

#: ``(family, sockaddr)``: one address, as ``getaddrinfo`` gives it.
Target = tuple[int, tuple[Any, ...]]
#: The sockets of one address: ``(TCP, UDP)`` with transport ``both``, ``(TCP, None)``
#: with ``tcp``, ``(UDP, None)`` with ``udp``.
SocketPair = tuple[socket.socket, socket.socket | None]
#: Tries of port 0 before giving up (another program can take the port that the first
#: address got before the other addresses or the other transport bind it).
PORT_ATTEMPTS = 20

T = TypeVar("T")


def describe_os_error(error: OSError) -> str:
    """A failed connection or bind in a few lowercase words: ``connection refused``."""
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "reset"
    if isinstance(error, TimeoutError):
        return "timed out"
    return str(error.strerror or error).lower()


# -------------------------------------------------------------------------- binding


def unique_addresses(infos: Sequence[tuple[Any, ...]]) -> list[Target]:
    """``(family, sockaddr)`` of each distinct address in ``getaddrinfo`` results."""
    unique: list[Target] = []
    for family, _, _, _, addr in infos:
        if all((family, addr[0]) != (f, a[0]) for f, a in unique):
            unique.append((int(family), tuple(addr)))
    return unique


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at ``host`` now (bound to port 0, then released:
    for a program that must be told its port before it binds it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def can_bind(host: str) -> bool:
    """Whether a TCP socket can be bound to the address ``host`` here (on a free port).
    Linux has every address of 127.0.0.0/8; macOS only 127.0.0.1 unless aliases were
    added (``sudo ifconfig lo0 alias 127.0.0.2 up``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
    except OSError:
        return False
    return True


#: Where everything played on one machine listens when no other address can be bound.
LOOPBACK = "127.0.0.1"


def loopback_hosts(hosts: Sequence[str]) -> list[str]:
    """``hosts`` (loopback addresses of their own, for parts played on this machine)
    when every one of them can be bound here; else 127.0.0.1 for each (macOS without
    aliases): the parts then differ by their ports alone."""
    if all(can_bind(host) for host in hosts):
        return list(hosts)
    return [LOOPBACK] * len(hosts)


def passive_addresses(host: str, port: int) -> list[Target]:
    """Every distinct address ``host`` resolves to, for listening (``localhost``:
    127.0.0.1 and ::1). Raises ``socket.gaierror``."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return unique_addresses(infos)


def bind_addresses(
    addresses: Sequence[Target], port: int, transport: str, reuse_port: bool = False
) -> list[SocketPair]:
    """Bind a TCP and/or a UDP socket (``transport``: ``tcp``, ``udp`` or ``both``) on
    each address, all on one port; port 0: the first bind picks it. ``reuse_port``:
    with ``SO_REUSEPORT``, so that other sockets (another worker's) can bind the same
    port and share its traffic. One try: OSError when any bind fails (nothing stays
    bound)."""
    bound: list[SocketPair] = []
    pair: list[socket.socket] = []
    try:
        for family, addr in addresses:
            pair = []
            kinds = [socket.SOCK_STREAM] if transport != "udp" else []
            if transport != "tcp":
                kinds.append(socket.SOCK_DGRAM)
            for kind in kinds:
                s = socket.socket(family, kind)
                pair.append(s)
                if kind == socket.SOCK_STREAM:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind((addr[0], port, *addr[2:]))
                port = s.getsockname()[1]
            bound.append((pair[0], pair[1] if len(pair) > 1 else None))
    except OSError:
        close_pairs(bound)
        for s in pair:
            s.close()
        raise
    return bound


def retry_port(port: int, bind: Callable[[int], T], attempts: int = PORT_ATTEMPTS) -> T:
    """``bind(port)``; with port 0, tried again (up to ``attempts`` times) while it
    fails, since the free port the first socket got can be taken before the others
    bind it. A fixed port is tried once. Raises the last OSError."""
    last_error: OSError | None = None
    for _attempt in range(attempts if port == 0 else 1):
        try:
            return bind(port)
        except OSError as e:
            last_error = e
    assert last_error is not None
    raise last_error


def bind_host(host: str, port: int, transport: str = "both") -> list[SocketPair]:
    """Every address of ``host`` bound on one port (port 0: one free port for all of
    them and both transports). Raises OSError (``socket.gaierror`` included)."""
    addresses = passive_addresses(host, port)
    return retry_port(port, lambda p: bind_addresses(addresses, p, transport))


def close_pairs(pairs: Sequence[SocketPair]) -> None:
    for first, second in pairs:
        first.close()
        if second is not None:
            second.close()


def raise_fd_limit() -> None:
    """Allow as many open files as the hard limit permits (each connection is one)."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def loop_error_kind(context: dict[str, Any], whose: str = "error") -> str:
    """An event loop's error (its exception handler's ``context``) in a few words, for
    counting instead of printing: "out of open files", "socket error (...)", or
    ``whose`` with the exception's type for anything else (a bug)."""
    error = context.get("exception")
    if isinstance(error, OSError) and error.errno in (errno.EMFILE, errno.ENFILE):
        return "out of open files"
    if isinstance(error, OSError):
        return f"socket error ({error.strerror or type(error).__name__})"
    if error is not None:
        return f"{whose} ({type(error).__name__})"
    return str(context.get("message", "error"))[:80]


_TCP_LISTEN = "0A"  # the state column of /proc/net/tcp for a listening socket


def listening_ports() -> set[int] | None:
    """The TCP ports some socket of this host listens on, read from the kernel's table
    of the calling thread's network namespace (``/proc/thread-self/net/tcp`` and
    ``tcp6``) without connecting to anything (a probe connection would be a client to
    the program listening there); None where the kernel does not tell (not Linux)."""
    ports: set[int] = set()
    found = False
    base = "/proc/thread-self/net" if os.path.isdir("/proc/thread-self/net") else "/proc/net"
    for table in (f"{base}/tcp", f"{base}/tcp6"):
        try:
            with open(table, encoding="ascii") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        found = True
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == _TCP_LISTEN:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports if found else None


def source_address(host: str, port: int) -> str:
    """The local address this host uses to reach ``host:port`` (127.0.0.1 for a tracker
    on loopback). Nothing is sent: connecting a UDP socket only picks the route."""
    family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        return str(s.getsockname()[0])


#: Addresses no packet is sent to: connecting a UDP socket to them only picks the route
#: (documentation ranges, RFC 5737 and RFC 3849).
_ROUTE_PROBES = ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1"))


def host_addresses() -> list[str]:
    """This host's addresses on its default routes (IPv4, then IPv6), as other machines
    would reach it: found by connecting a UDP socket, which sends nothing and asks no
    name server. Empty where there is no route (a machine offline)."""
    found: list[str] = []
    for family, probe in _ROUTE_PROBES:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                found.append(str(s.getsockname()[0]))
        except OSError:
            continue
    return found
