"""A student-style Part 2 tracker with one mistake chosen by FAULT (or none: "good").

    python3 ring_tracker.py PORT FAULT [PING_INTERVAL]

Faults: no-update (never sends UPDATE_NBR), not-self (a lone peer gets no neighbour),
successor (a peer's neighbour is the one after it), no-ping (never pings), no-prune
(pings, keeps the dead), fragile (stops serving after any error), off-by-one (hosts
(seq + 1, value)), dup-dies (a taken handle stops it). Serves 5 items on 127.0.0.1; reads
with the project's restricted decoder where a student would call pickle.loads.
"""

import contextlib
import pickle
import socket
import sys
import threading
import time

from cs457p2p import decode

PORT = int(sys.argv[1])
FAULT = sys.argv[2]
PING_INTERVAL = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
DB = [(4, "peaks"), (2, "and"), (0, "blue"), (3, "snowy"), (1, "skies")]
peers: list[tuple[str, str, int]] = []
lock = threading.Lock()


def send(addr: tuple[str, int], message: tuple[object, ...], want: bool = False) -> object:
    with socket.create_connection(addr, timeout=2) as s:
        s.sendall(pickle.dumps(message, protocol=0))
        if want:
            data = s.recv(1024)
            return decode(data) if data else None
    return None


def neighbour(k: int) -> tuple[str, str, int]:
    if FAULT == "successor":
        return peers[(k + 1) % len(peers)]
    return peers[k - 1]


def tell_all() -> None:
    if FAULT == "no-update":
        return
    with lock:
        ring = list(peers)
    for k, (_handle, ip, port) in enumerate(ring):
        nbr = ring[(k + 1) % len(ring)] if FAULT == "successor" else ring[k - 1]
        with contextlib.suppress(OSError):
            send((ip, port), ("UPDATE_NBR", *nbr))


def pinger() -> None:
    while FAULT != "no-ping":
        time.sleep(PING_INTERVAL)
        with lock:
            ring = list(peers)
        for p in ring:
            try:
                send((p[1], p[2]), ("PING", time.asctime()), want=True)
            except OSError:
                if FAULT != "no-prune":
                    with lock:
                        peers.remove(p)
                    tell_all()


def answer(message: object, ip: str) -> tuple[object, ...]:
    if not isinstance(message, tuple) or not message:
        raise ValueError("not a tuple")
    if message[0] == "ECHO":
        return ("[Tracker]", f"Hi {message[1]}, Welcome to the network.")
    if message[0] == "REGISTER":
        handle, port = message[1], message[2]
        with lock:
            if any(p[0] == handle for p in peers):
                if FAULT == "dup-dies":
                    raise ValueError("taken")
                return ("[Tracker]", "Bad request")
            peers.append((handle, ip, port))
            k = len(peers) - 1
            nbr = (None, None, None) if FAULT == "not-self" and k == 0 else neighbour(k)
            seq, value = DB[k % len(DB)]
            item = (seq + 1, value) if FAULT == "off-by-one" else (seq, value)
        return ("REG_INIT", *nbr, len(DB), item)
    return ("[Tracker]", "Bad request")


def main() -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", PORT))
    server.listen(16)
    threading.Thread(target=pinger, daemon=True).start()
    while True:
        conn, (ip, _) = server.accept()
        registered = False
        with conn:
            try:
                conn.settimeout(5)
                data = conn.recv(1024)
                message = decode(data)
                conn.sendall(pickle.dumps(answer(message, ip), protocol=0))
                registered = isinstance(message, tuple) and message[:1] == ("REGISTER",)
            except Exception as e:
                if FAULT in ("fragile", "dup-dies"):
                    print(f"error: {e!r}; serving no more", file=sys.stderr, flush=True)
                    while True:
                        time.sleep(60)
                continue
        if registered:
            tell_all()


if __name__ == "__main__":
    main()
