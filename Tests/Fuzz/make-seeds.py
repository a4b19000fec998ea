#!/usr/bin/env python3
"""Writes the seed corpora under Tests/Fuzz/Corpus/<target>/ from the wire spec's byte examples.

Run from the repository root; the outputs are committed (small). Each seed is named after what it is.
Sources: the spec's examples, the Ockam known-answer vectors (/work/shared/vectors/ockam/ockam-kat.json, or
$OCKAM_KAT), hand-written CBOR, and -- unless --no-swift -- the seeds that need the fuzz fixtures' keys (genuine
handshake messages, signed objects, ciphertexts), written by `OckamEdgeFuzz --write-seeds` as gen-* files.
Crash regressions (regress-* files) are never touched.
"""
import json, os, subprocess, struct, sys

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
    # frameTimeout byte, rate byte, then (length, delay in 40 ms steps, bytes) reads.
    "tcp-read-deadline": {
        "frame-in-reads": bytes([2, 0]) + bytes([1, 0, 1]) + bytes([2, 5, 0, 0]) + bytes([2, 5, 0, 5])
                          + bytes([5, 10]) + b"hello",
        "two-frames-one-read": bytes([0, 3]) + bytes([21, 1]) + b"\x01" + frame(b"abcdefgh") + frame(b"ijklmnop"),
        "prefix-stalls": bytes([1, 0]) + bytes([2, 0, 1, 0]) + bytes([0, 250]),
        "version-never-sent": bytes([0, 0]) + bytes([0, 200]),
        "body-trickles": bytes([0, 1]) + bytes([5, 0, 1, 0, 0, 3, 0xe8]) + bytes([200, 25]) + bytes(200) * 1
                         + bytes([200, 250]) + bytes(200),
        "empty-frame": bytes([3, 3]) + bytes([5, 0, 1, 0, 0, 0, 0]),
    },
}

# --- Ockam known-answer vectors -------------------------------------------------------------------------------
KAT = os.environ.get("OCKAM_KAT", "/work/shared/vectors/ockam/ockam-kat.json")
with open(KAT) as f:
    kat = json.load(f)
hx = bytes.fromhex

def item_end(b, i):
    """End offset of the CBOR item starting at b[i] (definite lengths only, as our decoders)."""
    ib = b[i]; major, info = ib >> 5, ib & 0x1f
    if major == 7: return i + 1
    if info < 24: n, j = info, i + 1
    else:
        w = {24: 1, 25: 2, 26: 4, 27: 8}[info]
        n, j = int.from_bytes(b[i + 1:i + 1 + w], "big"), i + 1 + w
    if major in (0, 1): return j
    if major in (2, 3): return j + n
    if major == 4:
        for _ in range(n): j = item_end(b, j)
        return j
    if major == 5:
        for _ in range(2 * n): j = item_end(b, j)
        return j
    raise ValueError("tag")

def children(b, i):
    """Offsets and raw bytes of the elements of the array starting at b[i]."""
    ib = b[i]; info = ib & 0x1f
    if info < 24: n, j = info, i + 1
    else:
        w = {24: 1, 25: 2, 26: 4, 27: 8}[info]
        n, j = int.from_bytes(b[i + 1:i + 1 + w], "big"), i + 1 + w
    out = []
    for _ in range(n):
        e = item_end(b, j); out.append((j, b[j:e])); j = e
    return out

ed25519_history, p256_history, elixir_history = [hx(i["change_history"]) for i in kat["identities"]]
close = hx(kat["secure_channel_plaintexts"]["close"])
refresh = hx(kat["secure_channel_plaintexts"]["refresh_credentials_from_rust"])
# refresh = [[1, [[history, [[credential, issuer_attestation]]]]], padding]
enum = children(refresh, 0)[0]
fields = children(refresh, enum[0])[1]
body = children(refresh, fields[0])[0]
(_, refresh_history), (creds_off, _) = children(refresh, body[0])
cred_and_pk_off, cred_and_pk_raw = children(refresh, creds_off)[0]
credential_raw, issuer_pka = [raw for _, raw in children(refresh, cred_and_pk_off)]
noise = kat["noise_xx_core"]["runs"]

def change_elements(history):
    """The raw (data, signature) of the single change of a one-change history."""
    (off, _), = children(history, 0)
    return [raw for _, raw in children(history, off)]

d0, s0 = change_elements(ed25519_history)

seeds["identity"] = {
    "kat-ed25519": ed25519_history,
    "kat-p256": p256_history,
    "kat-elixir-ed25519": elixir_history,
    "kat-rust-refresh": refresh_history,
    # Non-canonical but valid: explicit null previous signature; an ignored extra element.
    "first-change-null-previous": b"\x81\x83" + d0 + s0 + b"\xf6",
    "change-extra-element": b"\x81\x84" + d0 + s0 + b"\xf6\x00",
    "two-ed25519-histories-concatenated": b"\x82" + ed25519_history[1:] + elixir_history[1:],
}
seeds["attestation"] = {
    "kat-issuer-credential-key": issuer_pka,
    "kat-issuer-extra-element": b"\x83" + issuer_pka[1:] + b"\x00",
}
seeds["credential"] = {
    "kat-rust-credential": cred_and_pk_raw,
    "kat-extra-elements": b"\x83" + credential_raw + issuer_pka + b"\xf6",
}
seeds["identity-payload"] = {
    # Decodes (verification of the attestation against the identity is the handshake's job, not the decoder's).
    "kat-history-issuer-pka-credential": carr([ed25519_history, issuer_pka, carr([cred_and_pk_raw])]),
    "kat-refresh-history-no-credentials": carr([refresh_history, issuer_pka, carr([])]),
}
seeds["secure-channel-message"] = {
    "kat-close": close,
    "kat-refresh-credentials": refresh,
    "close-with-padding": hx("828202804400000000"),
    "payload-echo": hx("82 82 00 81 83 81 82 00 44 6563686f 81 82 00 43 617070 42 0102 40".replace(" ", "")),
    "payload-empty-routes": hx("8282008183808040" + "40"),
}
seeds["handshake-responder"] = {
    "kat-noise-msg1": hx(noise[0]["msg1"]),
    "kat-noise-msg3": hx(noise[0]["msg3"]),
    "kat-noise-msg3-payload": hx(noise[1]["msg3"]),
    "low-order-ephemeral": bytes(32),
}
seeds["handshake-initiator"] = {
    "kat-noise-msg2": hx(noise[0]["msg2"]),
}
# encrypted-message, mode 2 (first byte % 3 == 2): a script of ops, see Sources/EdgeFuzz/TransportTargets.swift.
#   0 len bytes… = send plaintext   1 k = send and drop k messages   2 i = deliver i-th newest
#   3 i pos mask = deliver tampered (mask 0 = truncate at pos)
def send(p): return bytes([0, len(p)]) + p
seeds["encrypted-message"] = {
    "script-send-deliver-replay": bytes([2]) + send(b"hello") + bytes([2, 0, 2, 0]),
    "script-rekey": bytes([2, 1, 31]) + send(b"k1") + bytes([2, 0, 2, 5, 1, 33]) + send(b"k2") + bytes([2, 0, 2, 1]),
    "script-tamper-truncate": bytes([2]) + send(b"abc") + bytes([3, 0, 9, 1, 3, 0, 7, 0, 2, 0]),
    "script-out-of-window": bytes([2, 1, 40]) + send(b"late") + bytes([2, 0, 2, 40, 2, 34]),
}
def cnull(): return b"\xf6"
def cbool(v): return b"\xf5" if v else b"\xf4"
def cmap(pairs): return cbor_head(5, len(pairs)) + b"".join(k + v for k, v in pairs)
def command(*fields): return carr([cbor_head(0, 2), carr(list(fields))])
seeds["control-request"] = {
    "status": hx("820281667374617475" + "73"),
    "create-channel": command(ctext("secure-channel/create"), ctext("/ip4/127.0.0.1/tcp/4000/secure/api"),
                              cbor_head(0, 30000)),
    "send-message": command(ctext("message/send"), ctext("/node/cloud/service/echo"), ctext("hi"), cnull(), cbool(True)),
    "pair-start": command(ctext("pair/start"), ctext("ble"), ctext("00:11:22:33:44:55/random,psm=0x81"), ctext("api"),
                          ctext("high"), cnull()),
    "pair-confirm": command(ctext("pair/confirm"), ctext("/service/" + "ab" * 16), ctext("sensor1"),
                            cmap([(ctext("room"), ctext("lab")), (ctext("site"), ctext("b"))])),
    "wrong-version": carr([cbor_head(0, 1), ctext("status"), cbor_head(5, 0)]),
    "duration-over-a-year": command(ctext("secure-channel/create"), ctext("/node/x"), cbor_head(0, 1 << 40)),
    "extra-field": command(ctext("status"), cnull()),
}
def reply(*fields): return carr([cbor_head(0, 0), carr(list(fields))])
seeds["control-response"] = {
    "status": reply(ctext("status"), cmap([(ctext("identifier"), ctext("I" + "ab" * 32)),
                                           (ctext("counters"), cmap([(ctext("delivered"), cbor_head(0, 7))])),
                                           (ctext("secure_channels"), carr([]))])),
    "message-reply": reply(ctext("message-reply"), ctext("HELLO")),
    "devices": reply(ctext("devices"), carr([carr([ctext("sensor1"), ctext("I" + "cd" * 32),
                                                   cmap([(ctext("room"), ctext("lab"))]), ctext("serial:s1"), cnull(),
                                                   cbor_head(0, 1765000000), carr([])])])),
    "error": carr([cbor_head(0, 1), ctext("no such secure channel")]),
    "unknown-status": carr([cbor_head(0, 2), ctext("")]),
}

# Store-and-forward queue records (docs/store-and-forward.md §4): magic 0x51, u64 sequence, u32 length, payload,
# CRC-32C over header+payload, all little-endian. queue-recovery seeds are whole segment files.
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF
def qrec(seq, payload):
    h = bytes([0x51]) + struct.pack("<QI", seq, len(payload)) + payload
    return h + struct.pack("<I", crc32c(h))
def flip(b, i, mask): b = bytearray(b); b[i] ^= mask; return bytes(b)
_big = qrec(5, b"x" * 10)
seeds["queue-record"] = {
    "kat-worked-example": qrec(1, b"hi"),
    "kat-empty-payload": qrec(0, b""),
    "kat-two-records": qrec(7, b"abc") + qrec(8, bytes(range(40))),
    "length-over-limit": _big[:9] + struct.pack("<I", 1025) + _big[13:],
    "bad-crc": flip(qrec(2, b"hello"), 14, 1),
    "torn": qrec(3, b"torn record")[:-2],
    "bad-magic": b"\x52" + qrec(1, b"hi")[1:],
}
seeds["queue-recovery"] = {
    "kat-three-records": qrec(1, b"one") + qrec(2, b"two") + qrec(5, b"five" * 20),
    "torn-tail": qrec(1, b"one") + qrec(2, b"two")[:-1],
    "flipped-middle": flip(qrec(1, b"one") + qrec(2, b"two") + qrec(3, b"three"), 19 + 13, 0x40),
    "decreasing-sequence": qrec(9, b"a") + qrec(4, b"b"),
    "duplicate-sequence": qrec(9, b"a") + qrec(9, b"a"),
    "huge-sequence": qrec(2**64 - 1, b"end"),
    "spans-windows": b"".join(qrec(i, bytes([i]) * 1000) for i in range(1, 6)),
    "garbage": b"not a segment file at all\n",
}

# Bridge envelopes (docs/bridge.md): selector byte (0 envelope, 1 record, 2 ack, 3 reply) ‖ CBOR.
_envelope = hx("8601076173687365726961" + "6c3a61" + "1903e8" + "426869")  # the documented worked example
seeds["bridge-envelope"] = {
    "kat-envelope": b"\x00" + _envelope,
    "envelope-extra-field": b"\x00" + b"\x87" + _envelope[1:] + b"\xf6",
    "envelope-version-2": b"\x00" + b"\x86\x02" + _envelope[2:],
    # The optional seventh element, the queue epoch (8 bytes from current gateways; at most 32; empty is refused).
    "kat-envelope-epoch": b"\x00" + b"\x87" + _envelope[1:] + cbytes(bytes.fromhex("0102030405060708")),
    "envelope-epoch-then-extra": b"\x00" + b"\x88" + _envelope[1:] + cbytes(bytes.fromhex("0102030405060708")) + b"\x01",
    "envelope-epoch-empty": b"\x00" + b"\x87" + _envelope[1:] + cbytes(b""),
    "envelope-epoch-too-long": b"\x00" + b"\x87" + _envelope[1:] + cbytes(bytes(33)),
    "envelope-epoch-not-bytes": b"\x00" + b"\x87" + _envelope[1:] + ctext("epoch"),
    "record": b"\x01" + carr([cbor_head(0, 1), ctext("ble:C0:FF:EE:00:00:01"), cbor_head(0, 1000),
                               cbor_head(2, 2) + b"hi"]),
    # The optional eighth element, `after` (pipelined delivery): a uint, or null; null in the epoch's place before it.
    "kat-envelope-after": b"\x00" + b"\x88" + _envelope[1:] + cbytes(bytes.fromhex("0102030405060708")) + b"\x06",
    "envelope-after-no-epoch": b"\x00" + b"\x88" + _envelope[1:] + b"\xf6\x06",
    "envelope-after-null": b"\x00" + b"\x88" + _envelope[1:] + b"\xf6\xf6",
    "envelope-after-not-uint": b"\x00" + b"\x88" + _envelope[1:] + b"\xf6" + ctext("6"),
    "envelope-after-then-extra": b"\x00" + b"\x89" + _envelope[1:] + b"\xf6\x06\x01",
    "ack": b"\x02" + hx("820107"),
    "ack-truncated": b"\x02" + hx("8201"),
    # The optional third element, the ingest service's window.
    "kat-ack-window": b"\x02" + hx("830107190400"),
    "ack-window-null": b"\x02" + hx("830107f6"),
    "ack-window-then-extra": b"\x02" + hx("84010702f5"),
    # Replies (selector 3): an acknowledgement or a refusal [2, sequence].
    "kat-reply-refusal": b"\x03" + hx("820207"),
    "reply-ack": b"\x03" + hx("830107190400"),
    "reply-version-3": b"\x03" + hx("820307"),
}
def cmap(pairs): return cbor_head(5, len(pairs)) + b"".join(ctext(k) + ctext(v) for k, v in pairs)
device_id = cbytes(bytes([0xab] * 32))
seeds["device-record"] = {
    # [1, identifier, {attributes}, transport, link security | null, paired_at] (docs/pairing.md)
    "kat-serial": carr([cbor_head(0, 1), device_id, cmap([("kind", "thermometer"), ("room", "lab")]),
                        ctext("serial:sensor1"), b"\xf6", cbor_head(0, 1764000000)]),
    "kat-ble-high": carr([cbor_head(0, 1), device_id, cmap([]), ctext("ble:AA:BB:CC:DD:EE:FF/random,psm=0x81"),
                          ctext("high"), cbor_head(0, 1764000000)]),
    "unsorted-keys": carr([cbor_head(0, 1), device_id, cmap([("z", "1"), ("a", "2")]), ctext("serial:x"), b"\xf6",
                           cbor_head(0, 0)]),
    "duplicate-key": carr([cbor_head(0, 1), device_id, cmap([("k", "1"), ("k", "2")]), ctext("serial:x"), b"\xf6",
                           cbor_head(0, 0)]),
    "version-2": carr([cbor_head(0, 2), device_id, cmap([]), ctext("serial:x"), b"\xf6", cbor_head(0, 0)]),
    "short-identifier": carr([cbor_head(0, 1), cbytes(b"\xab" * 31), cmap([]), ctext("serial:x"), b"\xf6",
                              cbor_head(0, 0)]),
    "huge-map": cbor_head(4, 6) + cbor_head(0, 1) + device_id + b"\xba\xff\xff\xff\xff",
    "extra-field": carr([cbor_head(0, 1), device_id, cmap([]), ctext("serial:x"), b"\xf6", cbor_head(0, 0),
                         ctext("future")]),
}

# Serial framing (docs/serial-framing.md): COBS(type ‖ body ‖ CRC-32C LE) between 0x00 delimiters.
def cobs(data):
    out, block = bytearray(), bytearray()
    for b in data:
        if b == 0:
            out += bytes([len(block) + 1]) + block; block = bytearray()
        else:
            block.append(b)
            if len(block) == 254:
                out += bytes([255]) + block; block = bytearray()
    return bytes(out + bytes([len(block) + 1]) + block)
def sframe(t, body):
    raw = bytes([t]) + body
    return b"\x00" + cobs(raw + struct.pack("<I", crc32c(raw))) + b"\x00"
seeds["serial-frames"] = {
    "data": sframe(3, b"\x82\x81\x00\x81\x00hi"),
    "keepalive-and-data": sframe(4, b"") + sframe(3, bytes(range(256))),
    "noise-then-frame": b"\x13\x37\xff\x00\x42" + sframe(3, b"after noise"),
    "bad-crc": flip(sframe(3, b"crc"), 3, 1),
    "zeros-in-body": sframe(3, b"\x00" * 300),
    "unknown-type": sframe(9, b"?"),
}
# BLE SDUs (docs/ble.md): length byte ‖ SDU, SDU = header (0 complete, 1 first + u32 BE total, 2 continuation) ‖ bytes.
def lsdu(b): return bytes([len(b)]) + b
_msg = bytes(range(40))
seeds["ble-sdus"] = {
    "complete": lsdu(b"\x00hello"),
    "first-and-continuations": lsdu(b"\x01" + struct.pack(">I", 40) + _msg[:18]) + lsdu(b"\x02" + _msg[18:40]),
    "oversize-announced": lsdu(b"\x01" + struct.pack(">I", 1 << 20) + b"x" * 18) + lsdu(b"\x02" + b"y" * 22),
    "continuation-without-first": lsdu(b"\x02abc"),
    "empty-sdu": lsdu(b""),
}
# Agent configuration files (docs/configuration.md).
_example = open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             "docs", "agent.example.yaml"), "rb").read()
seeds["agent-config"] = {
    "kat-example": _example,
    "minimal": b"node:\n  name: gw\n",
    "bridge": b"bridges:\n  - name: s\n    to: /node/cloud/secure/api/service/ingest\n    queue:\n      durability: always\n",
    "serial-mapping": b"transports:\n  serial:\n    - path: /dev/ttyUSB0\n      name: a\n      mode: listen\n",
    "flow-sequence": b"trust:\n  identities: [I" + b"ab" * 32 + b"]\n",
    "tab-indent": b"node:\n\tname: x\n",
    "unknown-key": b"nodes:\n  name: x\n",
    "deep": b"".join(b"  " * i + b"a:\n" for i in range(40)),
}

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Corpus")
for target, files in seeds.items():
    os.makedirs(os.path.join(root, target), exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(root, target, name), "wb") as f:
            f.write(data)
print("wrote", sum(len(f) for f in seeds.values()), "seeds")

# Seeds that need the fixtures' keys come from the Swift side (deterministic; checked by CorpusReplayTests).
if "--no-swift" not in sys.argv:
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run(["swift", "run", "OckamEdgeFuzz", "--write-seeds", root], cwd=repo, check=True)
