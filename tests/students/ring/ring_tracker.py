"""A student-style Part 2 tracker with one mistake chosen by FAULT (or none: "good").

    python3 ring_tracker.py PORT FAULT [PING_INTERVAL]
    python2 ring_tracker.py PORT FAULT [PING_INTERVAL]

Faults: no-update (never sends UPDATE_NBR), not-self (a lone peer gets no neighbour),
successor (a peer's neighbour is the one after it), no-ping (never pings), no-prune
(pings, keeps the dead), fragile (stops serving after any error), off-by-one (hosts
(seq + 1, value)), dup-dies (a taken handle stops it). Serves 5 items on 127.0.0.1.

Written for Python 2.7 and 3 alike, as students hand in both: the tests run it under
each. Under Python 3 it reads with the project's restricted decoder where a student
would call pickle.loads; under Python 2 it calls pickle.loads, as the course's code
does (only ever in tests, on loopback, fed by the checker).
"""

from __future__ import print_function

import contextlib
import pickle
import socket
import sys
import threading
import time

if sys.version_info[0] >= 3:
    from cs457p2p import decode
else:
    from pickle import loads as decode

PORT = int(sys.argv[1])
FAULT = sys.argv[2]
PING_INTERVAL = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
DB = [(4, "peaks"), (2, "and"), (0, "blue"), (3, "snowy"), (1, "skies")]
peers = []
lock = threading.Lock()


def send(addr, message, want=False):
    s = socket.create_connection(addr, timeout=2)
    with contextlib.closing(s):
        s.sendall(pickle.dumps(message, protocol=0))
        if want:
            data = s.recv(1024)
            return decode(data) if data else None
    return None


def neighbour(k):
    if FAULT == "successor":
        return peers[(k + 1) % len(peers)]
    return peers[k - 1]


def tell_all():
    if FAULT == "no-update":
        return
    with lock:
        ring = list(peers)
    for k, (_handle, ip, port) in enumerate(ring):
        nbr = ring[(k + 1) % len(ring)] if FAULT == "successor" else ring[k - 1]
        try:
            send((ip, port), ("UPDATE_NBR",) + tuple(nbr))
        except socket.error:  # (OSError in Python 3; an IOError in Python 2)
            pass


def pinger():
    while FAULT != "no-ping":
        time.sleep(PING_INTERVAL)
        with lock:
            ring = list(peers)
        for p in ring:
            try:
                send((p[1], p[2]), ("PING", time.asctime()), want=True)
            except socket.error:
                if FAULT != "no-prune":
                    with lock:
                        peers.remove(p)
                    tell_all()


def answer(message, ip):
    if not isinstance(message, tuple) or not message:
        raise ValueError("not a tuple")
    if message[0] == "ECHO":
        return ("[Tracker]", "Hi %s, Welcome to the network." % (message[1],))
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
        return ("REG_INIT",) + tuple(nbr) + (len(DB), item)
    return ("[Tracker]", "Bad request")


def main():
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", PORT))
    server.listen(16)
    pinging = threading.Thread(target=pinger)
    pinging.daemon = True
    pinging.start()
    while True:
        conn, (ip, _) = server.accept()
        registered = False
        with contextlib.closing(conn):
            try:
                conn.settimeout(5)
                data = conn.recv(1024)
                message = decode(data)
                conn.sendall(pickle.dumps(answer(message, ip), protocol=0))
                registered = isinstance(message, tuple) and message[:1] == ("REGISTER",)
            except Exception as e:
                if FAULT in ("fragile", "dup-dies"):
                    print("error: %r; serving no more" % (e,), file=sys.stderr)
                    sys.stderr.flush()
                    while True:
                        time.sleep(60)
                continue
        if registered:
            tell_all()


if __name__ == "__main__":
    main()
