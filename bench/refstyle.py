"""Reference-style tracker and client, as the course's reference behaves on the wire
(docs/PROTOCOL.md): the baseline.

The course's reference serves one connection at a time: accept, one ``recv(1024)``, one
answer in pickle protocol 0, close. Its clients open one connection per request and
read until EOF. This module does the same, so that the benchmark measures that design,
not a strawman: it decodes with the project's restricted decoder (the reference calls
``pickle.loads``; the cost is similar), answers pre-pickled protocol-0 bytes, and sets
TCP_NODELAY on neither side (the reference does not).

    python bench/refstyle.py tracker --port 0 --items N      # prints "listening on PORT"
    python bench/refstyle.py client --port PORT               # prints the message
    python bench/refstyle.py client --port PORT --ascii       # positions as b"0", b"1"...

``--ascii`` is the client many students write from the assignment's text: each position
sent as its ASCII digits, no newline, one per connection (the reference tracker answers
it 'Bad request'; ours answers it as the position).
"""

from __future__ import annotations

import argparse
import pickle
import random
import socket
import sys

from cs457p2p.core.decoder import DecodeError, NeedData, decode, decode_prefix


def serve(port: int, items: int) -> None:
    words = [f"w{i}" for i in range(items)]
    order = list(range(items))
    random.Random(1).shuffle(order)
    answers = [pickle.dumps((s, words[s]), protocol=0) for s in order]
    count = pickle.dumps(items, protocol=0)
    bad = pickle.dumps("Bad request", protocol=0)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(128)
        print(f"listening on {srv.getsockname()[1]}", flush=True)
        while True:
            conn, _ = srv.accept()
            with conn:
                data = conn.recv(1024)
                if data == b"REGISTER":
                    conn.sendall(count)
                    continue
                try:  # like pickle.loads: the first pickle, whatever follows it
                    got = decode_prefix(data, 0, max_size=1024)
                except DecodeError:
                    got = NeedData(0)
                value = None if isinstance(got, NeedData) else got[0]
                if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < items:
                    conn.sendall(answers[value])
                else:
                    conn.sendall(bad)


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(request)
        chunks: list[bytes] = []
        while True:
            data = s.recv(4096)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def fetch(port: int, ascii_positions: bool = False) -> str:
    n = decode(_exchange(port, b"REGISTER"))
    assert isinstance(n, int)
    db: list[str | None] = [None] * n
    for i in range(n):
        request = str(i).encode() if ascii_positions else pickle.dumps(i, protocol=2)
        item = decode(_exchange(port, request))
        assert isinstance(item, tuple) and len(item) == 2
        seq, value = item
        assert isinstance(seq, int) and isinstance(value, str)
        db[seq] = value
    assert all(v is not None for v in db)
    return " ".join(v for v in db if v is not None)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=("tracker", "client"))
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--items", type=int, default=16)
    p.add_argument("--ascii", action="store_true", help="send positions as ASCII digits")
    a = p.parse_args()
    if a.role == "tracker":
        serve(a.port, a.items)
    else:
        sys.stdout.write(fetch(a.port, a.ascii) + "\n")


if __name__ == "__main__":
    main()
