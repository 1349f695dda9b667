"""Connects to the address written into the program, not the one it is given."""

import pickle
import socket

from cs457p2p.core.decoder import decode as loads  # a student would use pickle.loads

HOST, PORT = "127.0.0.1", 7777  # my tracker


def ask(request):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((HOST, PORT))
    s.sendall(request)
    data = b""
    while True:
        chunk = s.recv(1024)
        if not chunk:
            break
        data += chunk
    s.close()
    return loads(data)


n = ask(b"REGISTER")
words = [None] * n
for i in range(n):
    seq, value = ask(pickle.dumps(i, 2))  # (protocol 2: the newest Python 2 reads)
    words[seq] = value
print(" ".join(words))
