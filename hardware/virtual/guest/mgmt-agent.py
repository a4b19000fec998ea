#!/usr/bin/env python3
"""Pairing agent for the BLE rig VM: answers the kernel's pairing confirmations, as bluetoothd does on a gateway.

Since Linux 5.x the kernel asks user space to confirm even Just Works pairing (MGMT_EV_USER_CONFIRM_REQUEST with
confirm_hint 1) and waits — 30 s, then the SMP timeout fails the pairing — for the reply. On a gateway bluetoothd
(or its agent) answers; the rig VM has no D-Bus and so no bluetoothd. This listens on the mgmt control channel and
accepts every confirmation request (the rig's two controllers only talk to each other). Logs one line per event.

    mgmt-agent.py            runs until killed
"""
import ctypes
import os
import struct
import sys

AF_BLUETOOTH, BTPROTO_HCI, SOCK_RAW, SOCK_CLOEXEC = 31, 1, 3, 0o2000000
HCI_DEV_NONE, HCI_CHANNEL_CONTROL = 0xFFFF, 3
EV_CMD_COMPLETE, EV_CMD_STATUS = 0x0001, 0x0002
EV_USER_CONFIRM_REQUEST, EV_AUTH_FAILED, EV_NEW_LTK = 0x000F, 0x0011, 0x000A
OP_USER_CONFIRM_REPLY = 0x001C


def log(text):
    print(f"mgmt-agent: {text}", flush=True)


def address(raw):
    return ":".join(f"{b:02X}" for b in reversed(raw[:6])) + ("/public" if raw[6] == 1 else "/random")


def main():
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.socket(AF_BLUETOOTH, SOCK_RAW | SOCK_CLOEXEC, BTPROTO_HCI)
    if fd < 0:
        sys.exit(f"mgmt-agent: socket: {os.strerror(ctypes.get_errno())}")
    sockaddr = struct.pack("<HHH", AF_BLUETOOTH, HCI_DEV_NONE, HCI_CHANNEL_CONTROL)
    if libc.bind(fd, ctypes.c_char_p(sockaddr), len(sockaddr)) != 0:
        sys.exit(f"mgmt-agent: bind to the mgmt control channel: {os.strerror(ctypes.get_errno())}")
    log("listening")
    while True:
        packet = os.read(fd, 2048)
        if len(packet) < 6:
            continue
        event, index, length = struct.unpack_from("<HHH", packet)
        params = packet[6:6 + length]
        if event == EV_USER_CONFIRM_REQUEST and len(params) >= 7:
            os.write(fd, struct.pack("<HHH", OP_USER_CONFIRM_REPLY, index, 7) + params[:7])
            hint = params[7] if len(params) > 7 else None
            log(f"hci{index}: confirmed pairing with {address(params)} (confirm hint {hint})")
        elif event == EV_AUTH_FAILED and len(params) >= 8:
            log(f"hci{index}: pairing with {address(params)} failed, status 0x{params[7]:02x}")
        elif event == EV_NEW_LTK and len(params) >= 8:
            log(f"hci{index}: new LTK for {address(params[1:])}")
        elif event in (EV_CMD_COMPLETE, EV_CMD_STATUS) and len(params) >= 3:
            opcode, status = struct.unpack_from("<HB", params)
            if opcode == OP_USER_CONFIRM_REPLY:
                log(f"hci{index}: confirmation reply status 0x{status:02x}")


if __name__ == "__main__":
    main()
