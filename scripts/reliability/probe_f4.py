#!/usr/bin/env python3
"""F4 probe (docs/security.md, finding F4); prints numbers, asserts nothing.

    python3 scripts/reliability/probe_f4.py BINARY N [node run flags…]

(1) N one-shot `message send …/secure/api/service/echo` clients against one node: how many channels they leave on
it; (2) a `node run` that opened a channel, killed with SIGKILL (no Close): is its channel reclaimed within 8 s?
"""
import os
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from edge import Context  # noqa: E402

binary, n, extra = os.path.abspath(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
ctx = Context(tempfile.mkdtemp(prefix='ockam-edge-probe-f4-'), 'probe', binary)
try:
    b = ctx.node('b', *extra)
    route = f'/ip4/127.0.0.1/tcp/{b.port}/secure/api/service/echo'
    for i in range(n):
        status, out, err = ctx.cli('message', 'send', route, f'm{i}', '--timeout', '10s')
        assert status == 0, err
    time.sleep(1)  # a probe, not a test: let Closes still in flight land
    print(f'one-shot clients: {n}; channels left on b after 1 s: {len(b.status()["secure_channels"])}')
    a = ctx.node('a')
    ok, body = a.call('secure-channel/create', to=f'/ip4/127.0.0.1/tcp/{b.port}/secure/api')
    assert ok, body
    before = len(b.status()['secure_channels'])
    a.kill9()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 8 and len(b.status()['secure_channels']) >= before:
        time.sleep(0.1)
    s = b.status()
    print(f'peer killed with SIGKILL: channels on b {before} -> {len(s["secure_channels"])} after '
          f'{time.monotonic() - t0:.1f} s; channels_closed_idle {s["counters"].get("channels_closed_idle", "n/a")}')
finally:
    ctx.close()
