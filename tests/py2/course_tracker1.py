"""A Python 2 stand-in of the course's Part 1 tracker, written from the project's notes
on how the course's code behaves on the wire (docs/PROTOCOL.md, Part 1):

* one connection at a time: accept, one recv(1024), one answer, close;
* the raw bytes REGISTER get N, pickled by Python 2 (protocol 0);
* anything else goes through pickle.loads and indexes the stored list: an index in
  range (negative ones too) gets that (SEQNUM, VALUE), anything that fails gets
  'Bad request' (Python 2 reads protocols 0 to 2 only);
* the 16 items in the course's stored order.

Like the course's, it calls pickle.loads on what arrives: it runs only in tests, on
loopback, and hears only what the tests send it (never a pickle that calls code).

    python2 course_tracker1.py PORT
"""

from __future__ import print_function

import pickle
import socket
import sys

PORT = int(sys.argv[1])
STORED = [
    (12, "of"),
    (3, "time"),
    (9, "review"),
    (6, "good"),
    (2, "the"),
    (5, "all"),
    (11, "use"),
    (8, "to"),
    (1, "is"),
    (7, "coders"),
    (14, "in"),
    (15, "python."),
    (10, "the"),
    (0, "Now"),
    (4, "for"),
    (13, "threads"),
]

srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", PORT))
srv.listen(5)
print("listening on %d" % PORT)
sys.stdout.flush()
while True:
    conn, _ = srv.accept()
    request = conn.recv(1024)
    if request == "REGISTER":
        answer = pickle.dumps(len(STORED))
    else:
        try:
            answer = pickle.dumps(STORED[pickle.loads(request)])
        except Exception:
            answer = pickle.dumps("Bad request")
    try:
        conn.send(answer)
    finally:
        conn.close()
