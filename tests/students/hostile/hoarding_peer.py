"""A hostile Part 2 peer: it registers as a peer would, then opens and holds every
connection it can to the tracker and to the neighbour the tracker names (three
processes, 900 each: more than the 1,024 open files a checker usually has), and never
answers anything. It reads the tracker's answer with the project's restricted decoder,
as the other student-style programs do.

    python3 hoarding_peer.py TRACKER_PORT HANDLE PORT
"""

import os
import pickle
import socket
import sys
import time

from cs457p2p import decode

TRACKER = ("127.0.0.1", int(sys.argv[1]))
HANDLE, PORT = sys.argv[2], int(sys.argv[3])

server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", PORT))
server.listen(1)  # (and never accepts)
s = socket.create_connection(TRACKER, timeout=5)
s.sendall(pickle.dumps(("REGISTER", HANDLE, PORT), protocol=2))
init = decode(s.recv(4096))
s.close()
targets = [TRACKER, (init[2], init[3])]
for _ in range(2):
    if os.fork() == 0:
        break
held = []
for k in range(900):
    try:
        held.append(socket.create_connection(targets[k % 2], timeout=1))
    except OSError:
        pass
time.sleep(60)
