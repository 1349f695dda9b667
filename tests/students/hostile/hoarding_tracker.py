"""A hostile Part 2 tracker: it answers ECHO and REGISTER as a tracker would (every
peer its own neighbour), then, for each peer that registers, opens and holds 900
connections to it from a process of its own, sending nothing. It reads requests with
the project's restricted decoder, as the other student-style programs do.

    python3 hoarding_tracker.py PORT
"""

import os
import pickle
import signal
import socket
import sys
import time

from cs457p2p import decode

PORT = int(sys.argv[1])
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # (no zombies)


def hoard(addr):
    held = []
    for _ in range(900):
        try:
            held.append(socket.create_connection(addr, timeout=1))
        except OSError:
            pass
    time.sleep(60)
    os._exit(0)


server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", PORT))
server.listen(64)
while True:
    conn, (ip, _) = server.accept()
    conn.settimeout(5)
    try:
        message = decode(conn.recv(1024))
        if message[0] == "ECHO":
            conn.sendall(pickle.dumps(("[Tracker]", "Hi " + message[1]), protocol=2))
        elif message[0] == "REGISTER":
            handle, port = message[1], message[2]
            conn.sendall(pickle.dumps(("REG_INIT", handle, ip, port, 1, (0, "x")), protocol=2))
            if os.fork() == 0:
                server.close()
                hoard((ip, port))
    except Exception:
        pass
    finally:
        conn.close()
