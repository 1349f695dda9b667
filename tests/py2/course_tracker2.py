"""A Python 2 stand-in of the course's Part 2 tracker, written from the project's notes
on how the course's code behaves on the wire (docs/PROTOCOL.md, Part 2), quirks and all:

* protocol 0 pickles (byte strings), one message per connection, one recv(1024);
* peers in registration order, each neighbour its predecessor, a lone peer its own;
* each peer hosts the item at position index % N of a 5-item database;
* after every registration (before the REG_INIT connection is closed) and after every
  prune, UPDATE_NBR to every peer (2 s to connect, errors ignored);
* a PING to every peer every PING_INTERVAL seconds, one after another (5 s each);
* a taken handle gets a REG_INIT with no neighbour and the item handed out last;
* any error while serving a connection (an empty one, bytes that are not a pickle)
  closes its listening socket for good (the course's then spins at full CPU; this one
  sleeps).

Like the course's, it calls pickle.loads on what arrives: it runs only in tests, on
loopback, and hears only this project's peers and tracker.

    python2 course_tracker2.py PORT [PING_INTERVAL]
"""

from __future__ import print_function

import pickle
import socket
import sys
import threading
import time

PORT = int(sys.argv[1])
PING_INTERVAL = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
DB = [(4, "peaks"), (2, "and"), (0, "blue"), (3, "snowy"), (1, "skies")]

peers = []  # (handle, ip, port), in registration order
lock = threading.Lock()
state = {"last_item": None}


def update_all():
    with lock:
        ring = list(peers)
    for i, (_handle, ip, port) in enumerate(ring):
        nbr = ring[i - 1]
        try:
            s = socket.create_connection((ip, port), 2)
            s.sendall(pickle.dumps(("UPDATE_NBR", nbr[0], nbr[1], nbr[2])))
            s.close()
        except Exception:
            pass


def pinger():
    while True:
        time.sleep(PING_INTERVAL)
        removed = False
        with lock:
            ring = list(peers)
        for peer in ring:
            try:
                s = socket.create_connection((peer[1], peer[2]), 5)
                s.settimeout(5)
                s.sendall(pickle.dumps(("PING", time.asctime())))
                s.recv(1024)
                s.close()
            except Exception:
                with lock:
                    if peer in peers:
                        peers.remove(peer)
                removed = True
        if removed:
            update_all()


def serve():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", PORT))
    srv.listen(5)
    print("listening on %d" % PORT)
    sys.stdout.flush()
    while True:
        conn, addr = srv.accept()
        try:
            msg = pickle.loads(conn.recv(1024))
            if msg[0] == "ECHO":
                reply = (
                    "[Tracker]",
                    "Hi %s, Welcome to the network. Register to get started." % msg[1],
                )
            elif msg[0] == "REGISTER":
                handle, port = msg[1], msg[2]
                with lock:
                    taken = [p for p in peers if p[0] == handle]
                    if taken:
                        reply = ("REG_INIT", None, None, None, len(DB), state["last_item"])
                    else:
                        peers.append((handle, addr[0], port))
                        index = len(peers) - 1
                        nbr = peers[index - 1]
                        item = DB[index % len(DB)]
                        state["last_item"] = item
                        reply = ("REG_INIT", nbr[0], nbr[1], nbr[2], len(DB), item)
                conn.sendall(pickle.dumps(reply))
                if not taken:
                    update_all()  # (the REG_INIT connection is still open)
                conn.close()
                continue
            else:
                reply = ("[Tracker]", "Bad request")
            conn.sendall(pickle.dumps(reply))
            conn.close()
        except Exception as e:
            print("error: %r: serving no more" % (e,))
            sys.stdout.flush()
            conn.close()
            srv.close()
            while True:
                time.sleep(60)


t = threading.Thread(target=pinger)
t.daemon = True
t.start()
serve()
