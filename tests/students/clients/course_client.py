"""A client written as HW08 asks (the course's pseudocode): register, then one connection
per item, a pause of 2 s between item requests, each (SEQNUM, VALUE) kept in a dict, the
VALUEs printed in SEQNUM order. With MISTAKE, it makes that one mistake instead.

    python3 course_client.py HOST PORT [MISTAKE]
    python2 course_client.py HOST PORT [MISTAKE]

Mistakes: no-pause, protocol4 (Python 3's default pickles), ascii (the digits, not a
pickle), idle-socket (opens a connection first and never uses it), dict (prints the
dict itself), lines (one VALUE per line), hardcoded (localhost:7777, as the starter).

Written for Python 2.7 and 3 alike: under Python 3 it reads answers with the project's
restricted decoder where a student would call pickle.loads; under Python 2 it calls
pickle.loads, as the course's code does (only ever in tests, fed by the checker).
"""

from __future__ import print_function

import pickle
import socket
import sys
import time

if sys.version_info[0] >= 3:
    from cs457p2p import decode
else:
    from pickle import loads as decode

MISTAKE = sys.argv[3] if len(sys.argv) > 3 else "good"
TRACKER = ("localhost", 7777) if MISTAKE == "hardcoded" else (sys.argv[1], int(sys.argv[2]))
PAUSE = 0.0 if MISTAKE == "no-pause" else 2.0


def ask(request):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(TRACKER)
    s.send(request)
    data = b""
    while True:
        chunk = s.recv(1024)
        if not chunk:
            break
        data += chunk
    s.close()
    return decode(data)


def position(i):
    if MISTAKE == "ascii":
        return str(i).encode()
    if MISTAKE == "protocol4":
        return pickle.dumps(i)
    return pickle.dumps(i, 2)


if MISTAKE == "idle-socket":
    forgotten = socket.create_connection(TRACKER)  # (the starter's, never used)
n = ask(b"REGISTER")
db = {}
for i in range(n):
    if i:
        time.sleep(PAUSE)
    seq, value = ask(position(i))
    db[seq] = value
if MISTAKE == "dict":
    print(db)
elif MISTAKE == "lines":
    for seq in range(n):
        print(db[seq])
else:
    print(" ".join(db[seq] for seq in range(n)))
