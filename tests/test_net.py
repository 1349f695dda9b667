"""``cs457p2p.net``: the socket helpers the transports share (binding is exercised by
every tracker test; here what no other test shows alone)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from conftest import Wrapper
from cs457p2p.net import can_bind, describe_os_error, listening_ports, loopback_hosts


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


def test_can_bind_says_which_addresses_are_this_machines() -> None:
    assert can_bind("127.0.0.1")
    assert can_bind("127.0.0.2")  # (Linux: all of 127.0.0.0/8; these tests run there)
    assert not can_bind("192.0.2.1")  # TEST-NET-1: no machine's address


def test_loopback_hosts_falls_back_to_127_0_0_1_when_one_cannot_be_bound() -> None:
    assert loopback_hosts(["127.0.0.2", "127.0.0.3"]) == ["127.0.0.2", "127.0.0.3"]
    # (192.0.2.1 stands in for the 127.0.0.3 that macOS does not have)
    assert loopback_hosts(["127.0.0.2", "192.0.2.1"]) == ["127.0.0.1", "127.0.0.1"]
    assert loopback_hosts([]) == []


def test_loopback_hosts_where_127_0_0_1_is_the_only_one(only_127_0_0_1: Wrapper) -> None:
    code = "from cs457p2p.net import loopback_hosts as h; print(h(['127.0.0.2', '127.0.0.3']))"
    r = subprocess.run(
        only_127_0_0_1([sys.executable, "-c", code]),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (r.returncode, r.stdout) == (0, "['127.0.0.1', '127.0.0.1']\n"), r.stderr
