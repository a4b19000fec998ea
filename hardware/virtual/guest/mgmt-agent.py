#!/usr/bin/env python3
"""Pairing agent for the BLE rig VM: answers the kernel's pairing requests, as bluetoothd's agent does on a gateway.

Since Linux 5.x the kernel asks user space to confirm even Just Works pairing (MGMT_EV_USER_CONFIRM_REQUEST with
confirm_hint 1) and waits — 30 s, then the SMP timeout fails the pairing — for the reply. On a gateway bluetoothd
(or its agent) answers; the rig VM has no D-Bus and so no bluetoothd. This listens on the mgmt control channel and
plays the person at both controllers (the rig's two controllers only talk to each other):

- Just Works (confirm hint 1): accepted.
- Numeric comparison (LE Secure Connections, both sides DisplayYesNo/KeyboardDisplay; confirm hint 0 with a
  6-digit value on each controller): the agent waits for both controllers' values and accepts only if they are
  equal, as a person comparing the two displays would; otherwise it rejects both.
- Passkey entry (legacy pairing with KeyboardDisplay): the passkey one controller displays (PASSKEY_NOTIFY) is
  typed into the other (USER_PASSKEY_REQUEST).

Logs one line per event. `--io-capability N` first sets every controller's IO capability through mgmt (0
DisplayOnly, 1 DisplayYesNo, 2 KeyboardOnly, 3 NoInputNoOutput, 4 KeyboardDisplay): the kernel's default (3) allows
only Just Works, i.e. `medium`; authenticated (`high`, `fips`) pairing needs input or output on both sides.

    mgmt-agent.py [--io-capability N]     runs until killed
"""
import ctypes
import os
import struct
import sys

AF_BLUETOOTH, BTPROTO_HCI, SOCK_RAW, SOCK_CLOEXEC = 31, 1, 3, 0o2000000
HCI_DEV_NONE, HCI_CHANNEL_CONTROL = 0xFFFF, 3
EV_CMD_COMPLETE, EV_CMD_STATUS = 0x0001, 0x0002
EV_USER_CONFIRM_REQUEST, EV_AUTH_FAILED, EV_NEW_LTK = 0x000F, 0x0011, 0x000A
EV_USER_PASSKEY_REQUEST, EV_PASSKEY_NOTIFY = 0x0010, 0x0017
OP_SET_IO_CAPABILITY, OP_USER_CONFIRM_REPLY, OP_USER_CONFIRM_NEG_REPLY = 0x0018, 0x001C, 0x001D
OP_USER_PASSKEY_REPLY, OP_READ_INDEX_LIST = 0x001E, 0x0003


def log(text):
    print(f"mgmt-agent: {text}", flush=True)


def address(raw):
    return ":".join(f"{b:02X}" for b in reversed(raw[:6])) + ("/public" if raw[6] == 1 else "/random")


def command(fd, opcode, index, params=b""):
    os.write(fd, struct.pack("<HHH", opcode, index, len(params)) + params)


def main():
    io_capability = None
    if len(sys.argv) == 3 and sys.argv[1] == "--io-capability":
        io_capability = int(sys.argv[2])
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.socket(AF_BLUETOOTH, SOCK_RAW | SOCK_CLOEXEC, BTPROTO_HCI)
    if fd < 0:
        sys.exit(f"mgmt-agent: socket: {os.strerror(ctypes.get_errno())}")
    sockaddr = struct.pack("<HHH", AF_BLUETOOTH, HCI_DEV_NONE, HCI_CHANNEL_CONTROL)
    if libc.bind(fd, ctypes.c_char_p(sockaddr), len(sockaddr)) != 0:
        sys.exit(f"mgmt-agent: bind to the mgmt control channel: {os.strerror(ctypes.get_errno())}")
    if io_capability is not None:
        command(fd, OP_READ_INDEX_LIST, HCI_DEV_NONE)
    else:
        log("listening")
    comparisons = {}  # index -> (address bytes, value): numeric comparisons waiting for the other display
    passkeys = []      # passkeys displayed, not yet typed
    waiting = []       # (index, address bytes) asking for a passkey
    while True:
        packet = os.read(fd, 2048)
        if len(packet) < 6:
            continue
        event, index, length = struct.unpack_from("<HHH", packet)
        params = packet[6:6 + length]
        if event == EV_USER_CONFIRM_REQUEST and len(params) >= 7:
            hint = params[7] if len(params) > 7 else 1
            if hint == 1:  # Just Works: nothing to compare
                command(fd, OP_USER_CONFIRM_REPLY, index, params[:7])
                log(f"hci{index}: confirmed pairing with {address(params)} (confirm hint 1)")
                continue
            value = struct.unpack_from("<I", params, 8)[0] if len(params) >= 12 else None
            log(f"hci{index}: pairing with {address(params)} shows {value:06d} (numeric comparison)")
            comparisons[index] = (params[:7], value)
            others = [i for i in comparisons if i != index]
            if others:
                other = others[0]
                same = comparisons[other][1] == value
                for i in (index, other):
                    command(fd, OP_USER_CONFIRM_REPLY if same else OP_USER_CONFIRM_NEG_REPLY, i, comparisons.pop(i)[0])
                log(f"hci{other} and hci{index} show {'the same' if same else 'different'} values: "
                    f"{'confirmed' if same else 'rejected'} on both")
        elif event == EV_PASSKEY_NOTIFY and len(params) >= 11:
            passkey = struct.unpack_from("<I", params, 7)[0]
            log(f"hci{index}: pairing with {address(params)} displays passkey {passkey:06d}")
            passkeys.append(passkey)
        elif event == EV_USER_PASSKEY_REQUEST and len(params) >= 7:
            log(f"hci{index}: pairing with {address(params)} asks for the passkey")
            waiting.append((index, params[:7]))
        elif event == EV_AUTH_FAILED and len(params) >= 8:
            log(f"hci{index}: pairing with {address(params)} failed, status 0x{params[7]:02x}")
        elif event == EV_NEW_LTK and len(params) >= 8:
            log(f"hci{index}: new LTK for {address(params[1:])} (key type {params[8] if len(params) > 8 else '?'}: "
                "0 unauthenticated, 1 authenticated, 2/3 the same with Secure Connections)")
        elif event in (EV_CMD_COMPLETE, EV_CMD_STATUS) and len(params) >= 3:
            opcode, status = struct.unpack_from("<HB", params)
            if opcode == OP_READ_INDEX_LIST and status == 0 and len(params) >= 5:
                count = struct.unpack_from("<H", params, 3)[0]
                for i in struct.unpack_from(f"<{count}H", params, 5):
                    command(fd, OP_SET_IO_CAPABILITY, i, bytes([io_capability]))
                log(f"io capability {io_capability} on {count} controllers")
                log("listening")
            elif opcode in (OP_USER_CONFIRM_REPLY, OP_USER_CONFIRM_NEG_REPLY, OP_USER_PASSKEY_REPLY, OP_SET_IO_CAPABILITY):
                log(f"hci{index}: reply 0x{opcode:04x} status 0x{status:02x}")
        while passkeys and waiting:  # type what one controller shows into the other
            i, peer = waiting.pop(0)
            passkey = passkeys.pop(0)
            command(fd, OP_USER_PASSKEY_REPLY, i, peer + struct.pack("<I", passkey))
            log(f"hci{i}: typed passkey {passkey:06d}")


if __name__ == "__main__":
    main()
