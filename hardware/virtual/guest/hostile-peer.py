#!/usr/bin/env python3
# An independent BLE host for the rig: Bumble's host stack (not the kernel's) drives a btvirt controller through the
# HCI user channel and talks to an ockam-edge gateway the way a device with its own stack (most BLE SoCs) can —
# including what a kernel L2CAP socket never sends: SDUs over the gateway's MTU, PDUs without credits, credit
# floods, hostile LE signalling, empty, truncated and reordered segments of docs/ble.md's framing.
#
#   hostile-peer.py --hci 1 --gateway 00:AA:01:00:00:00 --psm 0x81 --pid <gateway pid> CASE…
#   hostile-peer.py … fuzz --seconds 60 --seed 7
#
# Cases: baseline over-mtu no-credits credit-flood signalling framing. Every case ends with a good round trip on a
# fresh channel and a check that the gateway process is still alive; most also check that what they broke was only
# their own channel (a second channel on the same LE connection keeps working). Prints `PASS <case>: …` or
# `FAIL <case>: …` per check, and exits non-zero if any failed. Needs Debian's python3 (AF_BLUETOOTH) and Bumble
# (bumble==0.0.236, in the rig's venv: hardware/virtual/setup.sh).
import argparse
import asyncio
import logging
import os
import random
import struct
import sys
import time

from bumble import l2cap
from bumble.core import PhysicalTransport
from bumble.device import Device
from bumble.hci import Address, OwnAddressType
from bumble.transport import open_transport

LE_SIGNALING_CID = 0x0005
ROUND_TRIP_TIMEOUT = 15.0


# --- docs/ble.md framing; the routing message (docs/routing.md) from the reliability suite's helpers -----------

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts", "reliability"))
from edge import cbor_decode, local, routing_message  # noqa: E402


def fragments(message: bytes, limit: int) -> list[bytes]:
    if len(message) + 1 <= limit:
        return [b"\x00" + message]
    out = [b"\x01" + struct.pack(">I", len(message)) + message[: limit - 5]]
    rest = message[limit - 5:]
    while rest:
        out.append(b"\x02" + rest[: limit - 1])
        rest = rest[limit - 1:]
    return out


def parse_message(message: bytes) -> tuple[list, list, bytes]:
    """[onward, return, payload] of a routing message; each address is [transport type, value]."""
    onward, ret, payload = cbor_decode(message)[0][:3]
    return onward, ret, payload


class Reassembler:
    """The receiving half of docs/ble.md §3, for the gateway's replies."""

    def __init__(self):
        self.buffer: bytes | None = None
        self.total = 0

    def push(self, sdu: bytes) -> bytes | None:
        header, body = sdu[0], sdu[1:]
        if header == 0:
            return body
        if header == 1:
            self.total = struct.unpack(">I", body[:4])[0]
            self.buffer = body[4:]
        elif header == 2 and self.buffer is not None:
            self.buffer += body
        else:
            raise ValueError(f"bad fragment header {header}")
        if len(self.buffer) >= self.total:
            done, self.buffer = self.buffer, None
            return done
        return None


# --- The peer --------------------------------------------------------------------------------------------------

class Link:
    """One LE credit-based channel to the gateway, with its reassembler and replies by return address."""

    def __init__(self, channel: l2cap.LeCreditBasedChannel):
        self.channel = channel
        self.reassembler = Reassembler()
        self.replies: dict[bytes, asyncio.Future] = {}
        self.closed = asyncio.Event()
        channel.sink = self.on_sdu
        channel.on("close", self.closed.set)

    def on_sdu(self, sdu: bytes) -> None:
        try:
            message = self.reassembler.push(sdu)
            if message is None:
                return
            onward, ret, payload = parse_message(message)
        except Exception as error:  # a reply we cannot read is the gateway's bug: report it
            print(f"# unreadable SDU from the gateway: {error}", flush=True)
            return
        if onward and onward[0][0] == 0:
            future = self.replies.pop(onward[0][1], None)
            if future is not None and not future.done():
                future.set_result((onward, ret, payload))

    @property
    def open(self) -> bool:
        return self.channel.state == l2cap.LeCreditBasedChannel.State.CONNECTED

    async def echo(self, payload: bytes, timeout: float = ROUND_TRIP_TIMEOUT) -> bool:
        reply_to = os.urandom(16).hex().encode()
        future = asyncio.get_running_loop().create_future()
        self.replies[reply_to] = future
        message = routing_message([local("echo")], [local(reply_to)], payload)
        for sdu in fragments(message, self.channel.peer_mtu):
            self.channel.write(sdu)
        try:
            onward, ret, got = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            return False
        # Exact routes both ways (docs/ble.md, worked example): our return address, and echo's own.
        return got == payload and onward == [local(reply_to)] and ret == [local(b"echo")]

    def raw_sdu(self, sdu_length: int, data: bytes) -> None:
        """Sends K-frames for one SDU whatever its length, credits or MTU: the first carries the 2-byte SDU length."""
        mps = self.channel.peer_mps
        frame = struct.pack("<H", sdu_length) + data
        self.channel.send_pdu(frame[:mps])
        frame = frame[mps:]
        while frame:
            self.channel.send_pdu(frame[:mps])
            frame = frame[mps:]

    async def wait_closed(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.closed.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def close(self) -> None:
        if self.open:
            try:
                await asyncio.wait_for(self.channel.disconnect(), 5)
            except Exception:
                pass


class Peer:
    def __init__(self, device: Device, gateway: str, psm: int, pid: int, mtu: int):
        self.device, self.gateway, self.psm, self.pid, self.mtu = device, gateway, psm, pid, mtu
        self.connection = None
        self.failures = 0
        self.checks = 0

    def report(self, ok: bool, name: str, detail: str) -> bool:
        self.checks += 1
        if not ok:
            self.failures += 1
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
        return ok

    def gateway_alive(self) -> bool:
        try:
            with open(f"/proc/{self.pid}/stat") as stat:
                return stat.read().split(")")[-1].split()[0] not in ("Z", "X")
        except OSError:
            return False

    async def connect(self) -> None:
        if self.connection is not None:
            return
        address = Address(self.gateway, Address.PUBLIC_DEVICE_ADDRESS)
        self.connection = await self.device.connect(
            address, transport=PhysicalTransport.LE, own_address_type=OwnAddressType.PUBLIC, timeout=30)
        self.connection.on("disconnection", lambda *_: setattr(self, "connection", None))

    async def disconnect(self) -> None:
        if self.connection is not None:
            try:
                await asyncio.wait_for(self.connection.disconnect(), 10)
            except Exception:
                pass
            self.connection = None
            await asyncio.sleep(0.2)  # the gateway's controller re-arms advertising

    async def link(self, mtu: int | None = None, credits: int = 8) -> Link:
        await self.connect()
        spec = l2cap.LeCreditBasedChannelSpec(psm=self.psm, mtu=mtu or self.mtu, mps=min(mtu or self.mtu, 247),
                                              max_credits=credits)
        channel = await asyncio.wait_for(self.connection.create_l2cap_channel(spec=spec), 20)
        return Link(channel)

    async def good_round_trip(self, name: str) -> bool:
        """A fresh channel on a fresh LE connection echoes, and the gateway process is alive."""
        await self.disconnect()
        ok, detail = False, ""
        try:
            link = await self.link()
            payload = os.urandom(random.randint(1, 3000))
            ok = await link.echo(payload)
            detail = f"echo of {len(payload)} bytes on a new channel"
            await link.close()
        except Exception as error:
            detail = f"no new channel: {error!r}"
        alive = self.gateway_alive()
        return self.report(ok and alive, name, f"{detail}; gateway process {'alive' if alive else 'GONE'}")

    # --- Cases -------------------------------------------------------------------------------------------------

    async def case_baseline(self) -> None:
        link = await self.link()
        sizes = [1, link.channel.peer_mtu - 2, link.channel.peer_mtu + 100, 5000]
        results = [await link.echo(os.urandom(n)) for n in sizes]
        self.report(all(results), "baseline", f"echo of {sizes} bytes (gateway MTU {link.channel.peer_mtu}, "
                                              f"MPS {link.channel.peer_mps}): {results}")
        await link.close()

    async def case_over_mtu(self) -> None:
        victim, bystander = await self.link(), await self.link()
        mtu = victim.channel.peer_mtu
        self.report(await bystander.echo(b"before"), "over-mtu", "a second channel echoes before the attack")
        victim.raw_sdu(mtu + 1, b"\x00" + os.urandom(mtu))
        closed = await victim.wait_closed(10)
        self.report(closed, "over-mtu", f"one SDU of {mtu + 1} bytes (gateway MTU {mtu}): that channel was closed")
        self.report(await bystander.echo(os.urandom(700)), "over-mtu",
                    "the other channel on the same LE connection still echoes")
        self.report(self.gateway_alive(), "over-mtu", "the gateway process is alive")
        await bystander.close()
        await self.good_round_trip("over-mtu")

    async def case_no_credits(self) -> None:
        link = await self.link()
        granted = link.channel.credits
        # Far more complete SDUs than the credits the gateway granted, back to back, ignoring credit frames.
        message = routing_message([local("echo")], [local(b"00" * 16)], b"x")
        for _ in range(granted * 4 + 16):
            link.raw_sdu(len(message) + 1, b"\x00" + message)
        await asyncio.sleep(1)
        self.report(self.gateway_alive(), "no-credits",
                    f"{granted * 4 + 16} SDUs against {granted} credits; the gateway "
                    f"{'closed the channel' if not link.open else 'kept up'} and lives")
        await link.close()
        await self.good_round_trip("no-credits")

    async def case_credit_flood(self) -> None:
        link, bystander = await self.link(), await self.link()
        for i in range(8):
            frame = struct.pack("<BBHHH", 0x16, 0x80 + i, 4, link.channel.source_cid, 0xFFFF)
            self.connection.send_l2cap_pdu(LE_SIGNALING_CID, frame)
        await asyncio.sleep(1)
        self.report(await bystander.echo(b"after credit flood"), "credit-flood",
                    "8 credit frames of 65535 credits on one channel; the other channel still echoes")
        await bystander.close()
        await link.close()
        await self.good_round_trip("credit-flood")

    async def case_signalling(self) -> None:
        await self.connect()
        bystander = await self.link()
        send = lambda frame: self.connection.send_l2cap_pdu(LE_SIGNALING_CID, frame)  # noqa: E731
        ident = iter(range(1, 256))
        hostile = {
            "connection parameter update, min > max, timeout 0": struct.pack("<BBHHHHH", 0x12, next(ident), 8,
                                                                             0xFFFF, 6, 0xFFFF, 0),
            "LE credit connection, MTU 0 MPS 0 credits 0": struct.pack("<BBHHHHHH", 0x14, next(ident), 10,
                                                                       self.psm, 0x70, 0, 0, 0),
            "LE credit connection, MPS 65535, credits 65535": struct.pack("<BBHHHHHH", 0x14, next(ident), 10,
                                                                          self.psm, 0x71, 65535, 65535, 65535),
            "LE credit connection, source CID 0": struct.pack("<BBHHHHHH", 0x14, next(ident), 10, self.psm, 0,
                                                              672, 100, 5),
            "LE credit connection, duplicate source CID": struct.pack(
                "<BBHHHHHH", 0x14, next(ident), 10, self.psm, bystander.channel.source_cid, 672, 100, 5),
            "LE credit connection, PSM 0": struct.pack("<BBHHHHHH", 0x14, next(ident), 10, 0, 0x72, 672, 100, 5),
            "truncated command (length 10, 2 bytes)": struct.pack("<BBH", 0x14, next(ident), 10) + b"\x81\x00",
            "unknown command code 0xEE": struct.pack("<BBH", 0xEE, next(ident), 4) + os.urandom(4),
            # (A disconnection request for one of this connection's own channels is the peer closing its own
            # channel, not an attack: CIDs 0x7E/0x7F are the last the gateway would hand out.)
            "disconnection request for CIDs that do not exist": struct.pack("<BBHHH", 0x06, next(ident), 4,
                                                                          0x7F, 0x7E),
        }
        for name, frame in hostile.items():
            send(frame)
        await asyncio.sleep(1)
        self.report(await bystander.echo(b"after signalling"), "signalling",
                    f"{len(hostile)} hostile LE signalling commands ({'; '.join(hostile)}); "
                    "an open channel still echoes")
        self.report(self.gateway_alive(), "signalling", "the gateway process is alive")
        await self.good_round_trip("signalling")

    async def case_framing(self) -> None:
        good = routing_message([local("echo")], [local(b"11" * 16)], b"payload")
        violations = {
            "empty SDU": None,
            "unknown header 0x07": b"\x07" + good,
            "first fragment shorter than its 5-byte header": b"\x01\x00\x00",
            "continuation with no message in progress": b"\x02" + good,
            "continuation longer than what remains": [b"\x01" + struct.pack(">I", 10) + good[:4], b"\x02" + good],
            "a new first fragment before the last one completed": [b"\x01" + struct.pack(">I", 500) + good,
                                                                  b"\x01" + struct.pack(">I", 500) + good],
        }
        for name, sdus in violations.items():
            link, bystander = await self.link(), await self.link()
            if sdus is None:
                link.raw_sdu(0, b"")
            else:
                for sdu in sdus if isinstance(sdus, list) else [sdus]:
                    link.channel.write(sdu)
            closed = await link.wait_closed(10)
            self.report(closed, "framing", f"{name}: the gateway closed that channel")
            self.report(await bystander.echo(name.encode()), "framing", f"{name}: the other channel still echoes")
            await bystander.close()
            await self.disconnect()
        # Accepted, not violations: a message split although it fits one SDU, and fragments below the SDU limit.
        link = await self.link()
        message = routing_message([local("echo")], [local(b"22" * 16)], b"split")
        reply = asyncio.get_running_loop().create_future()
        link.replies[b"22" * 16] = reply
        link.channel.write(b"\x01" + struct.pack(">I", len(message)) + message[:3])
        link.channel.write(b"\x02" + message[3:10])
        link.channel.write(b"\x02" + message[10:])
        try:
            _, _, payload = await asyncio.wait_for(reply, ROUND_TRIP_TIMEOUT)
            ok = payload == b"split"
        except asyncio.TimeoutError:
            ok = False
        self.report(ok, "framing", "a small message in three unfilled fragments is accepted and answered")
        await link.close()
        await self.good_round_trip("framing")

    # --- Fuzzing -----------------------------------------------------------------------------------------------

    async def fuzz(self, seconds: float, seed: int, max_actions: int) -> None:
        rng = random.Random(seed)
        deadline = time.monotonic() + seconds
        actions = rounds = 0
        kinds: dict[str, int] = {}
        link = None
        while time.monotonic() < deadline and actions < max_actions:
            if link is None or not link.open:
                try:
                    link = await self.link(mtu=rng.choice([23, 64, 672, 2048]), credits=rng.randint(1, 20))
                except Exception as error:
                    if not self.report(False, "fuzz", f"no channel after {actions} actions: {error!r}"):
                        break
            kind = rng.choice(["sdu", "mutated", "raw", "signalling", "valid"])
            kinds[kind] = kinds.get(kind, 0) + 1
            actions += 1
            try:
                if kind == "sdu":
                    link.channel.write(bytes([rng.choice([0, 1, 2, rng.randrange(256)])])
                                       + rng.randbytes(rng.randint(0, 64)))
                elif kind == "mutated":
                    message = bytearray(b"\x00" + routing_message([local("echo")], [local(b"33" * 16)],
                                                                  rng.randbytes(rng.randint(0, 40))))
                    for _ in range(rng.randint(1, 4)):
                        message[rng.randrange(len(message))] = rng.randrange(256)
                    link.channel.write(bytes(message[: rng.randint(1, len(message))]))
                elif kind == "raw":
                    link.raw_sdu(rng.randrange(0x10000), rng.randbytes(rng.randint(0, 300)))
                elif kind == "signalling":
                    code = rng.choice([0x01, 0x06, 0x07, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19,
                                       rng.randrange(256)])
                    body = rng.randbytes(rng.randint(0, 16))
                    length = rng.choice([len(body), rng.randrange(0x10000)])
                    # Not every disconnection request: the fuzzer would mostly cut itself off.
                    if code != 0x06 or rng.random() >= 0.5:
                        self.connection.send_l2cap_pdu(LE_SIGNALING_CID,
                                                       struct.pack("<BBH", code, rng.randrange(256), length) + body)
                else:
                    await link.echo(rng.randbytes(rng.randint(1, 2000)), timeout=5)
            except Exception:
                link = None  # the channel went away under us; the next action opens another
            if actions % 25 == 0:
                rounds += 1
                if not self.gateway_alive():
                    self.report(False, "fuzz", f"the gateway process died after {actions} actions (seed {seed})")
                    return
                if not await self.good_round_trip("fuzz-check"):
                    return
                link = None
            await asyncio.sleep(0)
        await self.disconnect()
        self.report(True, "fuzz", f"{actions} actions ({kinds}), seed {seed}, {rounds} round-trip checks")
        await self.good_round_trip("fuzz")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hci", default="1", help="HCI index of the controller to drive (must be down)")
    parser.add_argument("--gateway", required=True, help="the gateway's LE public address")
    parser.add_argument("--psm", type=lambda s: int(s, 0), default=0x81)
    parser.add_argument("--pid", type=int, required=True, help="the gateway's process id (checked alive)")
    parser.add_argument("--mtu", type=int, default=672, help="our receive MTU on good channels")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--max-actions", type=int, default=100000)
    parser.add_argument("cases", nargs="+")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)

    async with await open_transport(f"hci-socket:{args.hci}") as (source, sink):
        device = Device.with_hci("hostile-peer", Address("F0:F1:F2:F3:F4:F5"), source, sink)
        await device.power_on()
        peer = Peer(device, args.gateway, args.psm, args.pid, args.mtu)
        print(f"# bumble host on hci{args.hci} ({device.public_address}), gateway {args.gateway} psm {args.psm:#x}",
              flush=True)
        for case in args.cases:
            started = time.monotonic()
            try:
                if case == "fuzz":
                    await peer.fuzz(args.seconds, args.seed, args.max_actions)
                else:
                    await getattr(peer, "case_" + case.replace("-", "_"))()
            except Exception as error:
                peer.report(False, case, f"aborted: {error!r}")
            print(f"# {case} took {time.monotonic() - started:.1f} s", flush=True)
            await peer.disconnect()
    print(f"# {peer.checks - peer.failures} of {peer.checks} checks passed", flush=True)
    return 1 if peer.failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
