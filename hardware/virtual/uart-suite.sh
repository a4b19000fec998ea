#!/usr/bin/env bash
# uart-suite.sh [baud…]: the 16550 UART suite (part of `make test-rig`; alone: `make test-rig-uart`).
#
# An ockam-edge node in the QEMU VM on /dev/ttyS1 (the kernel's 8250/16550 driver) and one on the host on the pty
# QEMU connects to that UART exchange Ockam messages both ways, plain and through end-to-end secure channels,
# with large frames and bursts, at each baud rate (default: 115200 9600). Both nodes are the same ockam-edge binary
# built on the host (the VM runs the host's root filesystem).
#
# Host (this script) and VM (guest/uart.sh) take turns through files in a shared read-write directory:
#   VM: <baud>.guest-ready (its node is up)  →  host: starts its node, runs host → VM tests, <baud>.host-done
#   →  VM: runs VM → host tests, stops its node, <baud>.guest-done  →  host: stops its node, next rate.
# Prints `ok`/`not ok` per test from both sides and `N passed, N failed`. If QEMU cannot run here, or the VM dies or
# times out, it says so and fails: it never reports a pass it did not see.
#
# Environment: UART_RIG_OCKAM_EDGE (a built ockam-edge; default: build it, release), BLE_RIG_PACKAGE (package to
# build from), UART_RIG_STEP_TIMEOUT (default 60 s per wait), BLE_VM_TIMEOUT (default 600 s) and the BLE_VM_*
# variables of run-in-vm.sh (BLE_VM_SERIAL is always pty here).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PACKAGE=${BLE_RIG_PACKAGE:-$(cd "$HERE/../.." && pwd)}
export BLE_VM_TIMEOUT=${BLE_VM_TIMEOUT:-600}
BAUDS=("$@")
[ ${#BAUDS[@]} -eq 0 ] && BAUDS=(115200 9600)

fail_rig() {
    echo "uart-rig: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

OCKAM_EDGE=${UART_RIG_OCKAM_EDGE:-}
if [ -z "$OCKAM_EDGE" ]; then
    echo "uart-rig: building ockam-edge in $PACKAGE (release)" >&2
    (cd "$PACKAGE" && swift build -c release --product ockam-edge >&2) || fail_rig "could not build ockam-edge"
    OCKAM_EDGE="$(cd "$PACKAGE" && swift build -c release --show-bin-path)/ockam-edge"
fi
[ -x "$OCKAM_EDGE" ] || fail_rig "ockam-edge $OCKAM_EDGE is not an executable"
OCKAM_EDGE=$(cd "$(dirname "$OCKAM_EDGE")" && pwd)/$(basename "$OCKAM_EDGE")
export OCKAM_EDGE

SHARED=$(mktemp -d "${TMPDIR:-/tmp}/uart-rig.XXXXXX")
OUT_DIR="$SHARED/host-out"
mkdir -p "$OUT_DIR"
# shellcheck source=hardware/virtual/guest/uart-lib.sh
. "$HERE/guest/uart-lib.sh"
export OCKAM_EDGE_STATE_DIR="$SHARED/host-state" OCKAM_EDGE_VAULT="$SHARED/host-vault"
LOG="$SHARED/host-node.log"
NODE=uart-rig-host
VM_PID=
NODE_PID=

cleanup() {
    [ -n "$NODE_PID" ] && kill -9 "$NODE_PID" 2>/dev/null
    [ -n "$VM_PID" ] && kill "$VM_PID" 2>/dev/null
    rm -rf "$SHARED"
}
trap cleanup EXIT

stop_node() {
    [ -n "$NODE_PID" ] || return 0
    kill "$NODE_PID" 2>/dev/null
    wait_for 10 bash -c "! kill -0 $NODE_PID 2>/dev/null" || kill -9 "$NODE_PID" 2>/dev/null
    wait "$NODE_PID" 2>/dev/null
    NODE_PID=
}

# The VM: run-in-vm.sh with the UART on a host pty, the shared directory read-write, guest/uart.sh as the command.
started=$SECONDS
BLE_VM_SERIAL=pty BLE_VM_SERIAL_INFO="$SHARED/pty" BLE_VM_RW="${BLE_VM_RW:+$BLE_VM_RW:}$SHARED" \
    BLE_VM_PASSENV="${BLE_VM_PASSENV:-} UART_RIG_STEP_TIMEOUT" \
    "$HERE/run-in-vm.sh" "$HERE/guest/uart.sh" "$OCKAM_EDGE" "$SHARED" "${BAUDS[@]}" > "$SHARED/vm.out" &
VM_PID=$!
tail -n +1 -s 0.2 -f --pid="$VM_PID" "$SHARED/vm.out" &
TAIL_PID=$!

vm_running() { kill -0 "$VM_PID" 2>/dev/null; }
# wait_vm <seconds> <file>: the VM created the file (false at once if the VM is gone).
wait_vm() {
    local deadline=$((SECONDS + $1))
    until [ -e "$2" ]; do
        vm_running || return 1
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.2
    done
}

PTY=
if wait_vm 30 "$SHARED/pty"; then PTY=$(cat "$SHARED/pty"); fi
if [ -n "$PTY" ] && [ -c "$PTY" ]; then
    note "guest /dev/ttyS1 is host $PTY"
    for baud in "${BAUDS[@]}"; do
        # The VM boots, checks the 230400 refusal and starts its node: allow for a slow TCG boot on a busy host.
        if ! wait_vm 240 "$SHARED/$baud.guest-ready"; then
            [ -e "$SHARED/$baud.guest-failed" ] && continue
            record 1 "$baud baud: the VM node never became ready"
            break
        fi
        : > "$LOG"
        "$OCKAM_EDGE" node run --name "$NODE" --tcp-listen 127.0.0.1:0 \
            --serial "$PTY,baud=$baud,mode=connect,name=vm" >> "$LOG" 2>&1 &
        NODE_PID=$!
        if wait_for "$STEP_TIMEOUT" "$OCKAM_EDGE" status --from "$NODE" --json && wait_linked "$NODE" vm; then
            record 0 "$baud baud: host node on $PTY linked to the VM node"
            echo_checks "$NODE" /serial/vm "$baud baud, host → VM"
        else
            record 1 "$baud baud: host node on $PTY linked to the VM node" "$LOG"
        fi
        touch "$SHARED/$baud.host-done"
        wait_vm $((STEP_TIMEOUT * 12)) "$SHARED/$baud.guest-done" || record 1 "$baud baud: the VM did not finish its tests"
        counters "$NODE"
        stop_node
    done
else
    note "no pty from QEMU"
fi

wait "$VM_PID"
status=$?
VM_PID=
wait "$TAIL_PID" 2>/dev/null
echo "uart-rig: VM run took $((SECONDS - started)) s (exit status $status)" >&2
case "$status" in
    124) fail_rig "the VM timed out after ${BLE_VM_TIMEOUT}s" ;;
    125) fail_rig "the VM died before the suite finished (kernel console above)" ;;
    126) fail_rig "this machine cannot run the virtual rig (QEMU or the kernel package is unavailable)" ;;
esac
[ -n "$PTY" ] || fail_rig "QEMU did not report the pty of the guest's /dev/ttyS1"
vm_passed=$(grep -c '^ok ' "$SHARED/vm.out")
vm_failed=$(grep -c '^not ok ' "$SHARED/vm.out")
[ $((vm_passed + vm_failed)) -gt 0 ] || fail_rig "the VM reported no tests"
[ "$status" = 0 ] || [ "$vm_failed" -gt 0 ] || record 1 "the VM side exited with status $status"
PASSED=$((PASSED + vm_passed))
FAILED=$((FAILED + vm_failed))
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
