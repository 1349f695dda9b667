"""Reads the request until the client closes (EOF) before answering."""

import pickle
import random
import socket
import sys

from cs457p2p.core.decoder import decode as loads  # a student would use pickle.loads

MESSAGE = "Now is the time for all good coders to review the use of threads in python."
items = list(enumerate(MESSAGE.split()))
random.shuffle(items)

server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen(5)


def answer(request):
    if request == b"REGISTER":
        return len(items)
    try:
        i = loads(request)
    except Exception:
        return "Bad request"
    if isinstance(i, int) and 0 <= i < len(items):
        return items[i]
    return "Bad request"


while True:
    conn, addr = server.accept()
    request = b""
    while True:
        chunk = conn.recv(1024)
        if not chunk:
            break
        request += chunk
    conn.sendall(pickle.dumps(answer(request), 2))
    conn.close()
