"""``HOST:PORT``, written and read, and which of them students should use: pure text, no
sockets (binding, connecting and finding this host's addresses are in
:mod:`cs457p2p.net`)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "Reach",
    "every_address",
    "format_address",
    "parse_address",
    "parse_port",
    "reach",
]


#: Where a tracker listens, and where clients and peers look for it, unless told.
DEFAULT_HOST = "localhost"
DEFAULT_PORT = 7777


def format_address(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 literal."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_port(text: str) -> int:
    """A port number 0..65535, or ValueError saying what is wrong."""
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"bad port {text!r}: not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"bad port {port}: must be 0..65535")
    return port


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT``, ``HOST`` or ``:PORT`` -> ``(host, port)``; an empty
    host is ``localhost``. ValueError saying what is wrong."""
    host, port_text = text, ""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"bad address {text!r}: missing ']'")
        host, rest = text[1:close], text[close + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"bad address {text!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:
        raise ValueError(f"bad address {text!r}: write an IPv6 address as [ADDR]:PORT")
    host = host or "localhost"
    if not port_text:
        return host, default_port
    return host, parse_port(port_text)


@dataclass(frozen=True)
class Reach:
    """The address students should use to reach a tracker, for the dashboard's header.
    ``scope``: ``all`` (it listens on every address of this host), ``some`` (on the
    addresses it was given), ``loopback`` (only programs on this host can reach it) or
    ``none`` (it listens on every address, but this host has none besides loopback)."""

    address: str
    scope: str
    note: str
    #: other ``HOST:PORT`` that reach it too
    others: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "scope": self.scope,
            "note": self.note,
            "others": list(self.others),
        }


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def every_address(bound: Sequence[str]) -> bool:
    """True if one of the addresses ``bound`` stands for every address of the host."""
    return any(ip is not None and ip.is_unspecified for ip in map(_ip, bound))


def reach(bound: Sequence[str], port: int, host_addresses: Sequence[str] = ()) -> Reach:
    """Where students reach a tracker listening on the addresses ``bound`` (``0.0.0.0``
    and ``::`` mean every address of the host: then one of ``host_addresses``, the
    addresses this host was found to have, IPv4 first) on ``port``."""
    ips = [ip for ip in map(_ip, bound) if ip is not None]
    wild = {ip.version for ip in ips if ip.is_unspecified}
    found = [
        ip
        for ip in map(_ip, host_addresses)
        if ip is not None
        and ip.version in wild
        and not (ip.is_loopback or ip.is_unspecified or ip.is_link_local)
    ]
    found += [ip for ip in ips if not (ip.is_loopback or ip.is_unspecified)]
    ordered = sorted(dict.fromkeys(found), key=lambda ip: ip.version)  # IPv4 first
    texts = [format_address(str(ip), port) for ip in ordered]
    if texts:
        note = (
            "listening on every address of this host"
            if wild
            else "listening on " + (", ".join(texts) if len(texts) > 1 else "this address")
        )
        return Reach(texts[0], "all" if wild else "some", note, tuple(texts[1:]))
    loopback = sorted((ip for ip in ips if ip.is_loopback), key=lambda ip: ip.version)
    shown = format_address(str(loopback[0]) if loopback else "127.0.0.1", port)
    if wild:
        return Reach(
            shown,
            "none",
            "listening on every address, but this host has no network address besides loopback now",
        )
    return Reach(
        shown,
        "loopback",
        "loopback only: other machines cannot connect; for a class, start the tracker with"
        " --host 0.0.0.0",
    )
