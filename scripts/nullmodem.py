#!/usr/bin/env python3
"""A null-modem cable made of two pseudo-terminals: DIR/ttyA and DIR/ttyB are symlinks to the slave sides, and
whatever one side writes the other reads. Used by `make demo` and the process-level tests to give two ockam-edge
processes a serial link without hardware. Prints "ready" once both links exist.

    scripts/nullmodem.py DIR
"""
import os
import pty
import select
import sys
import tty

m1, s1 = pty.openpty()
m2, s2 = pty.openpty()
for fd in (s1, s2):
    tty.setraw(fd)
d = sys.argv[1]
os.symlink(os.ttyname(s1), d + "/ttyA")
os.symlink(os.ttyname(s2), d + "/ttyB")
print("ready", flush=True)
while True:
    r, _, _ = select.select([m1, m2], [], [])
    for fd in r:
        try:
            data = os.read(fd, 65536)
        except OSError:
            continue
        os.write(m2 if fd == m1 else m1, data)
