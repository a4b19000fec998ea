#!/usr/bin/env bash
# Bench suite 7 (BLE), inside the virtual rig's VM (bench/harness.py starts it with hardware/virtual/run-in-vm.sh):
# two btvirt LE controllers, hci0 (receiving side, listeners) and hci1 (sending side), joined in-process by btvirt.
#
#   ble-guest.sh <OckamEdgeBench> <rounds> <message size> <messages per run> <warm-up messages> <mtus> [<mtus>]
#
# The first list (comma-separated, e.g. 672,65535) gets the goodput runs; the optional second one (e.g. 23) gets,
# per round, only a handshake and one 64-byte message (the handshake's SDUs and bytes at an MTU that fragments it).
#
# For each MTU: a receiving node (`serve --ble-listen hci0,psm=0x81,mtu=M`: secure-channel listener `api`, worker
# `sink`) and a raw sink (`raw-sink --l2cap-listen hci0,psm=0x83,mtu=M`) listen on hci0 (guest CPU 0); then, per
# round and in rotating order, one sending process per system connects from hci1 (guest CPU 1) and sends the same
# number of messages of the same size:
#   - ockam-edge secure channel: `send --ble-connect …`, end-to-end channel over the link, to `sink`;
#   - ockam-edge routing, no channel: the same with `--plain`;
#   - raw L2CAP: `raw-source --l2cap-connect …`, the same bytes over a bare LE CoC channel set up as a link is.
# Each sender prints one JSON result line; this script prints it on stdout as `{"mtu":M,"round":r,"result":{…}}`
# with the receiving process's CPU seconds added. Comments and progress go to stderr. Every step is bounded.
set -uo pipefail

BENCH=${1:?usage: ble-guest.sh <OckamEdgeBench> <rounds> <size> <count> <warmup> <mtus> [<handshake-only mtus>]}
ROUNDS=${2:?}
SIZE=${3:?}
COUNT=${4:?}
WARMUP=${5:?}
IFS=, read -r -a MTUS <<< "${6:-672,65535}"
IFS=, read -r -a HANDSHAKE_MTUS <<< "${7:-}"
HERE=$(cd "$(dirname "$0")" && pwd)
RIG=$HERE/../hardware/virtual/guest
GATEWAY_ADAPTER=hci0
SENDER_ADAPTER=hci1
NODE_PSM=0x81
RAW_PSM=0x83
STEP_TIMEOUT=${BLE_BENCH_STEP_TIMEOUT:-300}
WORK=/run/ble-bench
mkdir -p "$WORK"
PIDS=()
# Receivers on guest CPU 0, senders on CPU 1 (with one vCPU, everything shares it).
if [ "$(nproc)" -ge 2 ]; then RECEIVER_CPU=(taskset -c 0); SENDER_CPU=(taskset -c 1); else RECEIVER_CPU=(); SENDER_CPU=(); fi

# shellcheck source=../hardware/virtual/guest/rig-lib.sh
source "$RIG/rig-lib.sh"  # wait_for, address_of, advertise

say() { echo "ble-guest: [$SECONDS s] $*" >&2; }
fail() {
    say "FAILED: $*"
    for f in "$WORK"/*.err; do [ -s "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
    echo "{\"error\":\"$(echo "$*" | tr -d '"\\\\')\"}"
    stop_all
    exit 3
}
stop_all() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    PIDS=()
}
trap stop_all EXIT

cpu_seconds() {  # utime + stime of a process, in seconds (field 2 of /proc/PID/stat has no spaces here)
    awk -v tck="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / tck}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# start_listener <name> <argv…>: starts a receiving process on CPU 0; waits for its `listening` line.
start_listener() {
    local name=$1
    shift
    "${RECEIVER_CPU[@]}" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" &
    PIDS+=($!)
    LAST_PID=$!
    wait_for 60 grep -q '^listening' "$WORK/$name.out" || fail "$name did not start listening"
}

# run_sender <mtu> <round> <system> <receiver pid> <argv…>: one measured run on CPU 1; prints its result line.
run_sender() {
    local mtu=$1 round=$2 system=$3 receiver=$4
    shift 4
    local before after line status
    before=$(cpu_seconds "$receiver")
    timeout "$STEP_TIMEOUT" "${SENDER_CPU[@]}" "$@" > "$WORK/sender.out" 2> "$WORK/sender.err"
    status=$?
    after=$(cpu_seconds "$receiver")
    line=$(grep '^{' "$WORK/sender.out" | tail -n 1)
    if [ "$status" != 0 ] || [ -z "$line" ]; then
        # A connect can race the kernel re-arming advertising after the previous run's disconnection: re-arm, retry.
        say "$system at MTU $mtu failed (status $status): $(tail -n 3 "$WORK/sender.err" | tr '\n' ' '); retrying once"
        advertise
        before=$(cpu_seconds "$receiver")
        timeout "$STEP_TIMEOUT" "${SENDER_CPU[@]}" "$@" > "$WORK/sender.out" 2> "$WORK/sender.err"
        status=$?
        after=$(cpu_seconds "$receiver")
        line=$(grep '^{' "$WORK/sender.out" | tail -n 1)
        [ "$status" = 0 ] && [ -n "$line" ] \
            || fail "$system at MTU $mtu failed twice (status $status): $(tail -n 3 "$WORK/sender.err" | tr '\n' ' ')"
    fi
    local cpu
    cpu=$(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.3f", a - b}')
    echo "{\"mtu\":$mtu,\"round\":$round,\"system\":\"$system\",\"receiver_cpu_s\":$cpu,\"result\":$line}"
}

booted=$(cut -d' ' -f1 /proc/uptime)
ADDRS=$("$RIG/btvirt-up.sh") || fail "btvirt controllers did not come up"
GATEWAY=$(address_of "$GATEWAY_ADAPTER")
advertise
say "controllers $ADDRS; receiving side $GATEWAY_ADAPTER $GATEWAY, sending side $SENDER_ADAPTER"
echo "{\"guest\":{\"kernel\":\"$(uname -r)\",\"cpus\":$(nproc),\"uptime_at_start_s\":$booted,\"uptime_controllers_up_s\":$(cut -d' ' -f1 /proc/uptime),\"acl_mtu\":\"$(hciconfig "$GATEWAY_ADAPTER" | sed -n 's/.*ACL MTU: \([0-9:]*\).*/\1/p')\",\"btvirt\":\"$(btvirt --version 2>/dev/null || echo ?)\"}}"

SYSTEMS=(secure plain raw)
for mtu in "${MTUS[@]}"; do
    start_listener "serve-$mtu" "$BENCH" serve --ble-listen "$GATEWAY_ADAPTER,psm=$NODE_PSM,mtu=$mtu"
    serve_pid=$LAST_PID
    start_listener "raw-sink-$mtu" "$BENCH" raw-sink --l2cap-listen "$GATEWAY_ADAPTER,psm=$RAW_PSM,mtu=$mtu"
    raw_pid=$LAST_PID
    common=(--size "$SIZE" --count "$COUNT" --warmup "$WARMUP")
    for ((round = 0; round < ROUNDS; round++)); do
        k=$(( (round + mtu) % 3 ))  # rotate the order: drift hits every system alike
        for system in "${SYSTEMS[@]:k}" "${SYSTEMS[@]:0:k}"; do
            case "$system" in
                secure) run_sender "$mtu" "$round" "ockam-edge secure channel" "$serve_pid" "$BENCH" send \
                            --ble-connect "$GATEWAY,psm=$NODE_PSM,adapter=$SENDER_ADAPTER,mtu=$mtu" \
                            --system ble-secure "${common[@]}" ;;
                plain) run_sender "$mtu" "$round" "ockam-edge routing, no channel" "$serve_pid" "$BENCH" send \
                           --ble-connect "$GATEWAY,psm=$NODE_PSM,adapter=$SENDER_ADAPTER,mtu=$mtu" --plain \
                           --system ble-plain "${common[@]}" ;;
                raw) run_sender "$mtu" "$round" "raw L2CAP" "$raw_pid" "$BENCH" raw-source \
                         --l2cap-connect "$GATEWAY,psm=$RAW_PSM,adapter=$SENDER_ADAPTER,mtu=$mtu" \
                         --system ble-raw "${common[@]}" ;;
            esac
        done
        say "MTU $mtu round $((round + 1))/$ROUNDS done"
    done
    stop_all
done
for mtu in "${HANDSHAKE_MTUS[@]}"; do
    start_listener "serve-$mtu" "$BENCH" serve --ble-listen "$GATEWAY_ADAPTER,psm=$NODE_PSM,mtu=$mtu"
    serve_pid=$LAST_PID
    for ((round = 0; round < ROUNDS; round++)); do
        run_sender "$mtu" "$round" "handshake only" "$serve_pid" "$BENCH" send \
            --ble-connect "$GATEWAY,psm=$NODE_PSM,adapter=$SENDER_ADAPTER,mtu=$mtu" \
            --system ble-handshake --size 64 --count 1 --warmup 0
    done
    say "MTU $mtu: $ROUNDS handshakes done"
    stop_all
done
echo "{\"done\":true,\"uptime_end_s\":$(cut -d' ' -f1 /proc/uptime)}"
