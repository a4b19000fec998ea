#!/usr/bin/env python3
"""Writes the seed corpora under Tests/Fuzz/Corpus/<target>/ from the wire spec's byte examples.

Run from the repository root; the outputs are committed (small). Each seed is named after what it is.
"""
import os, struct

def cbor_head(major, n):
    m = major << 5
    if n < 24: return bytes([m | n])
    if n < 256: return bytes([m | 24, n])
    if n < 65536: return bytes([m | 25]) + struct.pack(">H", n)
    if n < 2**32: return bytes([m | 26]) + struct.pack(">I", n)
    return bytes([m | 27]) + struct.pack(">Q", n)

def cbytes(b): return cbor_head(2, len(b)) + b
def ctext(s): b = s.encode(); return cbor_head(3, len(b)) + b
def carr(items): return cbor_head(4, len(items)) + b"".join(items)
def addr(tt, v): return carr([cbor_head(0, tt), cbytes(v.encode())])
def route(*a): return carr(list(a))
def msg(onward, ret, payload, tracing=None):
    items = [onward, ret, cbytes(payload)]
    if tracing is not None: items.append(ctext(tracing))
    return carr(items)
def frame(body): return struct.pack(">I", len(body)) + body
def uleb(n):
    out = bytearray()
    while True:
        b = n & 0x7f; n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n: return bytes(out)

seeds = {
    "routing-message": {
        "heartbeat": bytes.fromhex("83808040"),
        "heartbeat-nil-tracing": bytes.fromhex("84808040f6"),
        "echo": msg(route(addr(0, "echo")), route(addr(0, "app")), b"\x05hello"),
        "tcp-hops": msg(route(addr(1, "127.0.0.1:4000"), addr(0, "uppercase")),
                        route(addr(0, "d92ef0aea946ec01cdbccc5b9d3f2e16")), b"\x02hi"),
        "tracing": msg(route(addr(0, "echo")), route(), b"",
                       '{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}'),
        "extra-elements": carr([route(addr(0, "echo")), route(), cbytes(b"x"), ctext("t"), cbor_head(0, 7), b"\xf6"]),
    },
    "cbor": {
        "close": bytes.fromhex("8282028040"),
        "nested": bytes.fromhex("a201820203a1410040f5f4f6"),
        "address": bytes.fromhex("82004465636866"),
    },
    "bare": {
        "hello": bytes.fromhex("0568656c6c6f"),
        "max-varint": bytes.fromhex("ffffffffffffffffff01"),
        "tcp-address": bytes.fromhex("010e") + b"localhost:4000",
    },
    "multiaddr-text": {
        "ip4-service": b"/ip4/127.0.0.1/tcp/4000/service/echo",
        "dnsaddr": b"/dnsaddr/localhost/tcp/4000/service/api",
        "ip6": b"/ip6/::1/tcp/4000/worker/abc",
        "secure": b"/project/default/service/forward_to_blue/secure/api/service/outlet",
        "node": b"/node/n1/service/uppercase",
    },
    "multiaddr-binary": {
        "ip4-tcp-service": bytes([4, 127, 0, 0, 1, 6, 0x0f, 0xa0]) + uleb(62526) + b"\x04echo",
        "secure": uleb(99526) + b"\x03api",
    },
    "tcp-frames": {
        "version-heartbeat": b"\x01" + frame(bytes.fromhex("83808040")),
        "version-two-frames": b"\x01" + frame(msg(route(addr(0, "echo")), route(), b"a"))
                              + frame(msg(route(addr(0, "uppercase")), route(addr(0, "x")), b"\x01b")),
        "wrong-version": b"\x02\x00\x00\x00\x01\x80",
        "oversize": b"\x01\xff\xff\xff\xff",
    },
}

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Corpus")
for target, files in seeds.items():
    os.makedirs(os.path.join(root, target), exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(root, target, name), "wb") as f:
            f.write(data)
print("wrote", sum(len(f) for f in seeds.values()), "seeds")
