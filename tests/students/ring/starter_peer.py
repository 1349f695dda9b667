"""A HW09 peer as a student completes the course's threaded starter: the same four
questions on stdin (the port to listen on, the host, a handle, the tracker's address),
the tracker at port 7777, a server thread and a client thread, plain print (never
flushed), a pause of 2 s before each QUERY, the dict of items printed as it grows and
the message once it is whole.
With PACE (seconds, the second argument) it pauses that long instead (0: a flood).

    printf '9000\\n127.0.0.1\\nbob\\n127.0.0.1\\n' | python3 starter_peer.py [PACE]

Written for Python 2.7 and 3 alike: under Python 3 it reads with the project's
restricted decoder where a student would call pickle.loads; under Python 2 it calls
pickle.loads, as the course's code does (only ever in tests, fed by the checker).
"""

from __future__ import print_function

import pickle
import socket
import sys
import threading
import time

if sys.version_info[0] >= 3:
    from cs457p2p import decode

    read_line = input
else:
    from pickle import loads as decode

    read_line = raw_input  # noqa: F821

PACE = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
port = int(read_line("port to listen on: ") or 9000)
host = read_line("host to listen on: ") or "localhost"
handle = read_line("your handle: ")
tracker = (read_line("tracker's address: ") or "localhost", 7777)
DB = {}
state = {"nbr": None, "size": 0}


def ask(address, packet):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(address)
    s.send(pickle.dumps(packet, 2))
    answer = s.recv(1024)
    s.close()
    return decode(answer) if answer else None


def serve(server):
    while True:
        conn, _ = server.accept()
        try:
            request = decode(conn.recv(1024))
            if request[0] == "PING":
                conn.send(pickle.dumps(("ACK", handle), 2))
            elif request[0] == "QUERY":
                key = int(request[1])
                item = (key, DB[key]) if key in DB else (None, None)
                conn.send(pickle.dumps(("QUERY_RESULT", item), 2))
            elif request[0] == "UPDATE_NBR":
                state["nbr"] = (request[1], request[2], request[3])
        except Exception as e:
            print("server error:", e)
        conn.close()


server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((host, port))
server.listen(5)
worker = threading.Thread(target=serve, args=(server,))
worker.daemon = True
worker.start()

print(ask(tracker, ("ECHO", handle)))
reply = ask(tracker, ("REGISTER", handle, port))
if state["nbr"] is None:
    state["nbr"] = (reply[1], reply[2], reply[3])
state["size"] = reply[4]
DB[reply[5][0]] = reply[5][1]
while len(DB) < state["size"]:
    time.sleep(PACE)
    wanted = min(k for k in range(state["size"]) if k not in DB)
    try:
        result = ask((state["nbr"][1], state["nbr"][2]), ("QUERY", wanted))
    except socket.error:
        continue
    if result and result[1][0] is not None and result[1][0] not in DB:
        DB[result[1][0]] = result[1][1]
        print(DB)
print(" ".join(DB[k] for k in range(state["size"])))
while True:
    time.sleep(1)
