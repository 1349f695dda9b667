"""A student-style Part 2 peer with one mistake chosen by FAULT (or none: "good").

    python3 ring_peer.py TRACKER_PORT HANDLE PORT FAULT
    python2 ring_peer.py TRACKER_PORT HANDLE PORT FAULT

Faults: bad-register (sends its port as text), no-pong (PING gets nothing back),
ack (answers PING with ('ACK', handle), as the course's sample peer), wrong-query
(answers every QUERY with (None, None)), ignores-update (keeps asking its first
neighbour), one-per-line (prints the VALUEs one per line), exits (stops after printing),
fragile (stops serving after any error), unsafe (sends its QUERYs as pickles that call
code). Listens on 127.0.0.1.

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

TRACKER = ("127.0.0.1", int(sys.argv[1]))
HANDLE = sys.argv[2]
PORT = int(sys.argv[3])
FAULT = sys.argv[4]
state = {"nbr": None, "n": None}
items = {}


class Seq(int):
    """An int that pickles as a call (REDUCE): what the unsafe fault sends."""

    def __reduce__(self):
        return (int, (int(self),))


def say(text, stream=sys.stdout):
    if sys.version_info[0] < 3 and not isinstance(text, str):
        text = text.encode("utf-8")  # (a unicode VALUE, from a Python 3 tracker)
    stream.write(text + "\n")
    stream.flush()


def ask(addr, message):
    s = socket.create_connection(addr, timeout=5)
    with contextlib.closing(s):
        s.sendall(pickle.dumps(message, protocol=2))
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return decode(data) if data else None


def answer(message):
    tag = message[0]
    if tag == "PING":
        if FAULT == "no-pong":
            return None
        return ("ACK" if FAULT == "ack" else "PING", HANDLE)
    if tag == "QUERY":
        seq = message[1]
        if FAULT == "wrong-query" or seq not in items:
            return ("QUERY_RESULT", (None, None))
        return ("QUERY_RESULT", (seq, items[seq]))
    if tag == "UPDATE_NBR":
        if FAULT != "ignores-update":
            state["nbr"] = (message[2], message[3])
        return None
    return ("[" + HANDLE + "]", "Bad request")


def serve(server):
    while True:
        conn, _ = server.accept()
        with contextlib.closing(conn):
            try:
                conn.settimeout(5)
                message = decode(conn.recv(1024))
                if not isinstance(message, tuple) or not message:
                    raise ValueError("not a tuple")
                reply = answer(message)
                if reply is not None:
                    conn.sendall(pickle.dumps(reply, protocol=2))
            except Exception as e:
                if FAULT == "fragile":
                    say("error: %r; serving no more" % (e,), sys.stderr)
                    return


def main():
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", PORT))
    server.listen(16)
    serving = threading.Thread(target=serve, args=(server,))
    serving.daemon = True
    serving.start()
    port = str(PORT) if FAULT == "bad-register" else PORT
    init = ask(TRACKER, ("REGISTER", HANDLE, port))
    if not isinstance(init, tuple) or init[0] != "REG_INIT":
        say("refused: %r" % (init,), sys.stderr)
        sys.exit(1)
    _, _nbr_handle, nbr_ip, nbr_port, n, hosted = init
    if state["nbr"] is None:
        state["nbr"] = (nbr_ip, nbr_port)
    items[hosted[0]] = hosted[1]
    while len(items) < n:
        missing = min(s for s in range(n) if s not in items)
        seq = Seq(missing) if FAULT == "unsafe" else missing
        try:
            got = ask(state["nbr"], ("QUERY", seq))
        except socket.error:  # (OSError in Python 3; an IOError in Python 2)
            got = None
        if isinstance(got, tuple) and got[1][0] is not None:
            items[got[1][0]] = got[1][1]
        else:
            time.sleep(0.1)
    if FAULT == "one-per-line":
        say("\n".join(items[s] for s in range(n)))
    else:
        say(" ".join(items[s] for s in range(n)))
    if FAULT == "exits":
        return
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
