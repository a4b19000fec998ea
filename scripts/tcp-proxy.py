#!/usr/bin/env python3
"""A loopback TCP proxy: stands in for a gateway's uplink, which `make demo` and the tests cut (kill the proxy: every
connection through it breaks at once) and restore (start it again on the same port). Prints "ready" when listening.

    scripts/tcp-proxy.py LISTEN_PORT TARGET_PORT
"""
import socket
import sys
import threading


def pump(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen(16)
print("ready", flush=True)
while True:
    client, _ = listener.accept()
    try:
        upstream = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
    except OSError:
        client.close()
        continue
    threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
