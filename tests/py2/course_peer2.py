"""A Python 2 stand-in of the course's sample Part 2 peer, written from the project's
notes on how the course's code behaves on the wire (docs/PROTOCOL.md, Part 2):

* reads its handle, its port and its host from stdin, one a line, as the sample does;
* protocol 0 pickles, one message per connection, one recv(1024);
* answers PING with ('ACK', handle), QUERY from what it holds ((None, None) otherwise),
  takes UPDATE_NBR; anything else gets the raw bytes 'No data sent!';
* asks its neighbour for the lowest SEQNUM it lacks, one QUERY per connection, every
  INTERVAL seconds (2 in the sample), until it holds all N; prints the message; serves on;
* any error in its server loop (an empty connection, bytes that are not a pickle) stops
  its serving for good.

Like the course's, it calls pickle.loads on what arrives: it runs only in tests, on
loopback, and hears only this project's peers and tracker.

    printf 'alice\\n9401\\n127.0.0.2\\n' | python2 course_peer2.py TRACKER_PORT [INTERVAL]
"""

from __future__ import print_function

import pickle
import socket
import sys
import threading
import time

TRACKER = ("localhost", int(sys.argv[1]) if len(sys.argv) > 1 else 7777)
INTERVAL = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
handle = sys.stdin.readline().strip()
port = int(sys.stdin.readline().strip())
host = sys.stdin.readline().strip() or "127.0.0.1"

have = {}
state = {"nbr": None, "updated": False, "n": None}


def serve():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(5)
    ready.set()
    while True:
        conn, _ = srv.accept()
        try:
            msg = pickle.loads(conn.recv(1024))
            if msg[0] == "PING":
                conn.sendall(pickle.dumps(("ACK", handle)))
            elif msg[0] == "QUERY":
                seq = msg[1]
                if seq in have:
                    conn.sendall(pickle.dumps(("QUERY_RESULT", (seq, have[seq]))))
                else:
                    conn.sendall(pickle.dumps(("QUERY_RESULT", (None, None))))
            elif msg[0] == "UPDATE_NBR":
                state["nbr"] = (msg[1], msg[2], msg[3])
                state["updated"] = True
            else:
                conn.sendall("No data sent!")
            conn.close()
        except Exception as e:
            print("error: %r: serving no more" % (e,), file=sys.stderr)
            conn.close()
            srv.close()
            return


def ask(address, msg):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    s.settimeout(5)
    s.connect(address)
    s.sendall(pickle.dumps(msg))
    data = ""
    while True:
        chunk = s.recv(1024)
        if not chunk:
            break
        data += chunk
    s.close()
    return pickle.loads(data)


ready = threading.Event()
t = threading.Thread(target=serve)
t.daemon = True
t.start()
ready.wait()
reply = ask(TRACKER, ("REGISTER", handle, port))
print("%s: %r" % (handle, reply), file=sys.stderr)
n, item = reply[4], reply[5]
state["n"] = n
if item is not None:
    have[item[0]] = item[1]
if not state["updated"] and reply[1] is not None:
    state["nbr"] = (reply[1], reply[2], reply[3])
while len(have) < n:
    time.sleep(INTERVAL)
    nbr = state["nbr"]
    if nbr is None:
        continue
    seq = min(s for s in range(n) if s not in have)
    try:
        answer = ask((nbr[1], nbr[2]), ("QUERY", seq))
    except Exception:
        continue
    if answer[1][0] is not None:
        have[answer[1][0]] = answer[1][1]
print(" ".join(have[s] for s in range(n)))
sys.stdout.flush()
while True:
    time.sleep(60)
