#!/usr/bin/env bash
# The guest half of the UART suite, run inside the VM by ../uart-suite.sh: an ockam-edge node on /dev/ttyS1, the
# VM's second 16550 UART (the kernel's 8250 driver: termios, divisor for the baud rate), talks to a node on the host
# at the other end of QEMU's pty.
#
#   uart.sh <ockam-edge> <shared dir> <baud>…
#
# For each baud rate: start the node on /dev/ttyS1 (mode=listen, link name `host`), check what the driver set,
# write <shared>/<baud>.guest-ready, wait for <shared>/<baud>.host-done (the host ran its tests: host → VM), run
# the VM → host tests, stop the node, write <shared>/<baud>.guest-done. Before that, one check that the 8250 driver
# really refuses a rate its 1.8432 MHz clock cannot make.
#
# Prints `ok`/`not ok` lines (the host counts them). Every wait is bounded (UART_RIG_STEP_TIMEOUT, default 60 s).
set -uo pipefail

OCKAM_EDGE=${1:?usage: uart.sh <ockam-edge> <shared dir> <baud>…}
SHARED=${2:?usage: uart.sh <ockam-edge> <shared dir> <baud>…}
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hardware/virtual/guest/uart-lib.sh
. "$HERE/uart-lib.sh"
TTY=${BLE_VM_TTY:-/dev/ttyS1}
# Node records, control sockets and the vault stay in the guest's RAM (never on 9p: unix sockets there are the
# host's).
export OCKAM_EDGE_STATE_DIR=/run/uart-rig/state OCKAM_EDGE_VAULT=/run/uart-rig/vault
mkdir -p /run/uart-rig
LOG=/run/uart-rig/node.log
NODE=vm

# The 8250 driver, as the kernel sees this port (type, I/O port, IRQ, tx/rx byte counts).
uart_line() { sed -n 's/^1: /ttyS1: /p' /proc/tty/driver/serial; }
note "$(uart_line)"

start_node() {  # start_node <serial spec options>
    : > "$LOG"
    "$OCKAM_EDGE" node run --name "$NODE" --tcp-listen 127.0.0.1:0 --serial "$TTY,$1" >> "$LOG" 2>&1 &
    NODE_PID=$!
    wait_for "$STEP_TIMEOUT" "$OCKAM_EDGE" status --from "$NODE" --json
}
stop_node() {
    [ -n "${NODE_PID:-}" ] || return 0
    kill "$NODE_PID" 2>/dev/null
    wait_for 10 bash -c "! kill -0 $NODE_PID 2>/dev/null" || kill -9 "$NODE_PID" 2>/dev/null
    wait "$NODE_PID" 2>/dev/null
    NODE_PID=
}
trap stop_node EXIT

# 230400 needs a divisor below 1 on the 16550's 1.8432 MHz clock: the 8250 driver keeps the old rate, and the node
# must say so (it waits for a usable port rather than run at the wrong speed).
if start_node "baud=230400,mode=listen,name=host"; then
    wait_for "$STEP_TIMEOUT" grep -q 'cannot run at 230400 baud' "$LOG"
    record $? "the 8250 driver refuses 230400 baud (max 115200 at 1.8432 MHz) and the node reports it" "$LOG"
    grep -m1 -o 'cannot run at 230400 baud[^"]*' "$LOG" | sed 's/^/#   /'
else
    record 1 "the 8250 driver refuses 230400 baud (the node did not start)" "$LOG"
fi
stop_node

for baud in "$@"; do
    if ! start_node "baud=$baud,mode=listen,name=host"; then
        record 1 "$baud baud: VM node on $TTY did not start" "$LOG"
        touch "$SHARED/$baud.guest-failed"
        continue
    fi
    # What the driver set: stty reads the port's termios back (the node holds the port open).
    speed=$(stty -F "$TTY" speed 2>&1)
    [ "$speed" = "$baud" ]
    record $? "$baud baud: the 8250 driver runs $TTY at $speed baud" "$LOG"
    before=$(uart_line)
    touch "$SHARED/$baud.guest-ready"

    if wait_for 300 test -e "$SHARED/$baud.host-done"; then
        wait_linked "$NODE" host
        record $? "$baud baud: VM node linked to the host node" "$LOG"
        echo_checks "$NODE" /serial/host "$baud baud, VM → host" $([ "$baud" != "$1" ] && echo quick)
    else
        record 1 "$baud baud: the host did not finish its tests within 300 s" "$LOG"
    fi
    note "before: $before"
    note "after:  $(uart_line)"
    counters "$NODE"
    stop_node
    touch "$SHARED/$baud.guest-done"
done
note "VM side: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
