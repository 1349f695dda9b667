"""Places each VALUE at the position it asked for, not at its SEQNUM."""

import pickle
import socket
import sys

from cs457p2p.core.decoder import decode as loads  # a student would use pickle.loads

HOST, PORT = sys.argv[1], int(sys.argv[2])


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
    words[i] = value
print(" ".join(words))
