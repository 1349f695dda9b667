"""Captures of real sessions for the Wireshark dissector's tests, and pcap files made
from bytes.

Run as a script inside a network namespace of its own, where loopback carries nothing
but the session::

    unshare --net -- python wire_capture.py OUT.pcap SESSION [ARGS...]

it brings ``lo`` up, captures every packet on it with a packet socket (bound before the
session starts, read until the session is over and loopback quiet: nothing is lost at
either end, and the kernel's drop count must be 0), runs the session and writes a
pcap; on stdout, one JSON object says what the session printed. Sessions:

* ``demo``: ``cs457p2p demo``; ``ring``: ``cs457p2p demo --peers 3``;
* ``py2 PYTHON2 TRACKER``: the course's Part 2 tracker (a stand-in, under Python 2.7),
  an ECHO, and five of our peers that complete its ring, PINGed while they linger;
* ``extras``: a tracker that writes its answers in 5-byte pieces and a client against
  it (answers split over segments); a UDP client; ASCII positions, a protocol 4 pickle,
  a REGISTER in two segments, a dangerous pickle and text sent by hand; and traffic of
  another protocol on another port.

(dumpcap was tried first: started on the same namespace, it missed a whole short
session unless given a second before and after, so the capture is done here.)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pickle
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

LINKTYPE_ETHERNET = 1
SNAPLEN = 262144
ETH_P_ALL = 3
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4  # (on lo each packet is seen going out and coming in: keep one)
SOL_PACKET = 263
PACKET_STATISTICS = 6
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
QUIET = 0.2  # seconds of silence on loopback that end a capture
CLI = [sys.executable, "-m", "cs457p2p"]
RUN_TIMEOUT = 60.0


# -------------------------------------------------------------------- pcap files


def write_pcap(path: Path, packets: Sequence[tuple[float, bytes]]) -> None:
    """A classic pcap of Ethernet frames: ``(time, frame)`` each."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        for stamp, frame in packets:
            sec = int(stamp)
            usec = int((stamp - sec) * 1_000_000)
            f.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
            f.write(frame)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    """An Ethernet frame of one IPv4 UDP datagram (UDP checksum 0: none)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        0,
        0x4000,
        64,
        socket.IPPROTO_UDP,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return b"\0" * 12 + struct.pack("!H", ETH_P_IP) + header + udp


# ---------------------------------------------------------------------- capturing


def bring_loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


class LoopbackCapture:
    """Every packet on ``lo`` from :meth:`start` until :meth:`stop` (which waits for
    loopback to be quiet), by a packet socket read in a thread."""

    def __init__(self) -> None:
        self.packets: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE (root)
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._read, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _read(self) -> None:
        last = time.monotonic()
        while True:
            try:
                frame, address = self._sock.recvfrom(SNAPLEN)
            except TimeoutError:
                if self._stop.is_set() and time.monotonic() - last >= QUIET:
                    return
                continue
            last = time.monotonic()
            if address[2] != PACKET_OUTGOING:
                self.packets.append((time.time(), frame))

    def stop(self) -> int:
        """Stop once loopback is quiet; return how many packets the kernel dropped."""
        self._stop.set()
        self._thread.join(10)
        stats = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        self._sock.close()
        return int(struct.unpack("II", stats)[1])


# ---------------------------------------------------------------------- sessions


def _run(args: Sequence[str], timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def _line(proc: subprocess.Popen[str], timeout: float = 10.0) -> str:
    """The next line of ``proc``'s stdout (or stderr, whichever it was given as)."""
    stream = proc.stdout if proc.stdout is not None else proc.stderr
    assert stream is not None
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        raise RuntimeError(f"{proc.args!r} printed nothing within {timeout} s")
    return stream.readline().strip()


@contextlib.contextmanager
def _process(args: Sequence[str], **kwargs: object) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(list(args), stdin=subprocess.DEVNULL, text=True, **kwargs)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def _exchange(port: int, data: bytes | Sequence[bytes], answers: int = 1) -> bytes:
    """Send ``data`` (pieces 50 ms apart) on a connection of its own; read until EOF or
    until ``answers`` pickles have come (then close)."""
    from cs457p2p.core.answers import AnswerParser

    pieces = [data] if isinstance(data, bytes) else list(data)
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for k, piece in enumerate(pieces):
            if k:
                time.sleep(0.05)
            s.sendall(piece)
        parser = AnswerParser()
        count = 0
        while count < answers:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
            with contextlib.suppress(Exception):
                count += len(parser.feed(chunk))
    return got


def session_demo(args: Sequence[str]) -> dict[str, object]:
    r = _run([*CLI, "demo", *args])
    return {"returncode": r.returncode, "stdout": r.stdout, "stderr": r.stderr}


def session_py2(python2: str, tracker_script: str) -> dict[str, object]:
    from cs457p2p.core.wire import encode
    from cs457p2p.net import free_port

    port = free_port()
    out: dict[str, object] = {"port": port}
    with _process(
        [python2, tracker_script, str(port), "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as tracker:
        out["tracker"] = _line(tracker)
        out["echo"] = _exchange(port, encode(("ECHO", "student"))).hex()
        peers = [
            subprocess.Popen(
                [
                    *CLI,
                    "peer",
                    "--tracker",
                    f"127.0.0.1:{port}",
                    "--handle",
                    f"p{k}",
                    "--listen",
                    f"127.0.0.{k}",
                    "--linger",
                    "1.2",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for k in range(2, 7)
        ]
        messages = []
        for p in peers:
            try:
                stdout, _ = p.communicate(timeout=RUN_TIMEOUT)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.communicate(timeout=10)
            messages.append(stdout.strip())
        out["messages"] = messages
    return out


def session_extras() -> dict[str, object]:
    from cs457p2p.core.wire import REGISTER
    from cs457p2p.net import free_port
    from standins import evil_pickle  # (beside this file)

    out: dict[str, object] = {}
    with _process(
        [*CLI, "tracker", "--host", "127.0.0.1", "--port", "0", "--chunk", "5"],
        stderr=subprocess.PIPE,
    ) as tracker:
        line = _line(tracker)
        port = int(line.split(":")[1].split()[0])
        out["port"] = port
        r = _run([*CLI, "client", "--tracker", f"127.0.0.1:{port}", "--quiet"])
        out["tcp_client"] = r.stdout.strip()
        r = _run([*CLI, "client", "--tracker", f"127.0.0.1:{port}", "--transport", "udp", "-q"])
        out["udp_client"] = r.stdout.strip()
        sent = {
            "digits": _exchange(port, b"3\n"),
            "digit_run": _exchange(port, b"1\n2\n", answers=2),
            "protocol0": _exchange(port, b"I9\n."),
            "protocol4": _exchange(port, pickle.dumps(("ECHO", "student4"), protocol=4)),
            "split_register": _exchange(port, [REGISTER[:4], REGISTER[4:]]),
            "dangerous": _exchange(port, evil_pickle("echo pwned")),
            "text": _exchange(port, b"hello\n"),
        }
        out["answers"] = {k: v.hex() for k, v in sent.items()}
    other = free_port()
    out["other_port"] = other
    with (
        socket.create_server(("127.0.0.1", other)) as server,
        socket.create_connection(("127.0.0.1", other), timeout=10) as c,
    ):
        conn, _ = server.accept()
        with conn:
            c.sendall(b"hello world\n")
            conn.recv(100)
            conn.sendall(b"OK\n")
            c.recv(100)
    return out


def main(argv: Sequence[str]) -> int:
    out_path, session, *args = argv
    bring_loopback_up()
    capture = LoopbackCapture()
    capture.start()
    try:
        if session == "demo":
            result = session_demo(args)
        elif session == "py2":
            result = session_py2(*args)
        elif session == "extras":
            result = session_extras()
        else:
            raise SystemExit(f"unknown session {session!r}")
    finally:
        dropped = capture.stop()
        write_pcap(Path(out_path), capture.packets)
    result["packets"] = len(capture.packets)
    result["dropped"] = dropped
    json.dump(result, sys.stdout)
    return 0 if dropped == 0 else 1


if __name__ == "__main__":
    os.environ.pop("PYTHONUNBUFFERED", None)
    sys.exit(main(sys.argv[1:]))
