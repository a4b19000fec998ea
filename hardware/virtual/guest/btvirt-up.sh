#!/usr/bin/env bash
# In the guest: starts BlueZ's btvirt with two linked LE-only virtual controllers (hci0, hci1), powers them up,
# and waits until both report non-zero addresses. Prints the addresses as `hci0=<addr> hci1=<addr>`.
#
# The kernel sends HCI_Reset as soon as btvirt opens /dev/vhci and gives up after 2 s (HCI_CMD_TIMEOUT); a
# controller whose reset timed out stays at 00:00:00:00:00:00 (rig notes, pitfall 4). Under TCG on a loaded
# host, btvirt can miss that window, so: preload the modules it and SMP need, warm the page cache with its
# binary and libraries, and if a controller still comes up without an address, re-run its initialisation with
# `hciconfig hciN up` (cheap) before restarting btvirt (slow: the kernel waits out the pending commands).
set -uo pipefail
LOG=${BTVIRT_LOG:-/run/btvirt.log}
say() { echo "btvirt-up: [$SECONDS s] $*" >&2; }

modprobe -a bluetooth hci_vhci af_alg algif_hash algif_skcipher ecb cmac ecdh_generic 2>/dev/null \
    || modprobe -a bluetooth hci_vhci af_alg algif_hash algif_skcipher ecb cmac
cat "$(command -v btvirt)" $(ldd "$(command -v btvirt)" | awk '/=>/ {print $3}') > /dev/null 2>&1
btvirt --help > /dev/null 2>&1
# btvirt binds AF_ALG ecb(aes) and cmac(aes) for each controller while the kernel already waits for the first
# one's HCI_Reset; instantiating them once here runs the kernel's crypto self-tests before that clock starts.
# (Debian's /usr/bin/python3 has AF_ALG; a pyenv python on PATH may not.)
/usr/bin/python3 - <<'PY' 2>/dev/null
import socket
for kind, name in (("skcipher", "ecb(aes)"), ("hash", "cmac(aes)")):
    s = socket.socket(socket.AF_ALG, socket.SOCK_SEQPACKET, 0)
    s.bind((kind, name))
    s.close()
PY

# One hciconfig call lists every controller as "hciN: … BD Address: X" (process starts are slow under TCG).
addresses() { hciconfig 2>/dev/null | awk '/^hci[0-9]+:/ {dev=$1; sub(":", "", dev)} /BD Address/ {print dev "=" $3}'; }
address() { addresses | sed -n "s/^$1=//p"; }
ready() { local a; a=$(addresses); echo "$a" | grep -q "^hci0=" && echo "$a" | grep -q "^hci1="; }
good() { local a; a=$(address "$1"); [ -n "$a" ] && [ "$a" != 00:00:00:00:00:00 ]; }

for attempt in 1 2 3; do
    btvirt -L -l2 >> "$LOG" 2>&1 &
    echo $! > /run/btvirt.pid
    for _ in $(seq 150); do
        ready && break
        sleep 0.1
    done
    # The kernel's init (HCI_Reset first) has 2 s per command; give it that, then re-run what timed out.
    for _ in $(seq 30); do
        good hci0 && good hci1 && break
        sleep 0.1
    done
    for dev in hci0 hci1; do
        for retry in 1 2 3; do
            good "$dev" && break
            say "$dev has no address yet; re-running its initialisation (retry $retry)"
            hciconfig "$dev" up 2>/dev/null
        done
    done
    if good hci0 && good hci1 && hciconfig hci0 up && hciconfig hci1 up; then
        say "controllers ready (attempt $attempt)"
        echo "hci0=$(address hci0) hci1=$(address hci1)"
        exit 0
    fi
    say "attempt $attempt failed ($(addresses | tr '\n' ' ')); restarting btvirt"
    kill "$(cat /run/btvirt.pid)" 2>/dev/null
    wait 2>/dev/null
done
say "no controllers after 3 attempts"
cat "$LOG" >&2
dmesg | grep -i bluetooth | tail -20 >&2
exit 1
