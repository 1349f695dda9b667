"""``cs457p2p.net``: the socket helpers the transports share (binding is exercised by
every tracker test; here what no other test shows alone)."""

from __future__ import annotations

import socket

import pytest

from cs457p2p.net import (
    describe_os_error,
    listening_ports,
)


def test_listening_ports_sees_a_listener_without_connecting() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        before = listening_ports()
        assert before is not None  # (Linux: these tests run there)
        assert port not in before  # bound is not listening
        s.listen()
        s.setblocking(False)
        after = listening_ports()
        assert after is not None and port in after
        try:
            s.accept()
        except BlockingIOError:
            pass  # nobody connected: looking did not touch it
        else:
            raise AssertionError("listening_ports connected to the port")
    closed = listening_ports()
    assert closed is not None and port not in closed


def test_listening_ports_sees_ipv6_listeners() -> None:
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with s:
        s.listen()
        ports = listening_ports()
        assert ports is not None and s.getsockname()[1] in ports


def test_describe_os_error_is_one_line() -> None:
    e = ConnectionRefusedError(111, "Connection refused")
    assert describe_os_error(e) == "connection refused"
