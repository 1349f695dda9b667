"""``HOST:PORT``, written and read: pure text, no sockets (binding and connecting are in
:mod:`cs457p2p.net`)."""

from __future__ import annotations

__all__ = ["format_address", "parse_address", "parse_port"]


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


def parse_address(text: str, default_port: int = 7777) -> tuple[str, int]:
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
