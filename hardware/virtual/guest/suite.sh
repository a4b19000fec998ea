#!/usr/bin/env bash
# The BLE rig suite, run inside the VM by ../rig-suite.sh (or on a single Linux machine with two controllers):
# two ockam-edge nodes (ble-rig-driver) on hci0 (gateway, listener) and hci1 (sensor, connector) exchange Ockam
# messages over an L2CAP LE credit-based channel, and the link is cut and recovers.
#
#   suite.sh <ble-rig-driver> [test-name…]
#
# Every wait has a bound (BLE_RIG_STEP_TIMEOUT, default 90 s, per driver step) so nothing hangs. Prints one
# `ok`/`not ok` line per test and `N passed, N failed` at the end; exits non-zero if any test failed.
set -uo pipefail

DRIVER=${1:?usage: suite.sh <ble-rig-driver> [test…]}
shift
HERE=$(cd "$(dirname "$0")" && pwd)
STEP_TIMEOUT=${BLE_RIG_STEP_TIMEOUT:-90}
WORK=${BLE_RIG_WORK:-/run/ble-rig}
PSM=0x81
GATEWAY_ADAPTER=${BLE_RIG_GATEWAY_ADAPTER:-hci0}
SENSOR_ADAPTER=${BLE_RIG_SENSOR_ADAPTER:-hci1}
rm -rf "$WORK"
mkdir -p "$WORK"
PASSED=0
FAILED=0
GW_PID=

note() { echo "# $*"; }

finish() {
    [ -n "$GW_PID" ] && kill -9 "$GW_PID" 2>/dev/null
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" = 0 ]
    exit
}

record() {  # record <status> <name> <log…>
    local status=$1 name=$2
    shift 2
    if [ "$status" = 0 ]; then
        PASSED=$((PASSED + 1))
        echo "ok - $name"
    else
        FAILED=$((FAILED + 1))
        echo "not ok - $name"
        for log in "$@"; do
            [ -f "$log" ] && sed 's/^/#   /' "$log"
        done
    fi
}

# wait_for, address_of, advertise
source "$HERE/rig-lib.sh"

start_gateway() {  # start_gateway <mtu> <log> [driver option…]
    local mtu=$1 log=$2
    shift 2
    rm -f "$WORK/gw.ready"
    "$DRIVER" gateway "$GATEWAY_ADAPTER,psm=$PSM,mtu=$mtu" --ready-file "$WORK/gw.ready" "$@" >> "$log" 2>&1 &
    GW_PID=$!
    wait_for 60 test -f "$WORK/gw.ready"
}

stop_gateway() {
    [ -n "$GW_PID" ] && kill -9 "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null
    GW_PID=
}

sensor() {  # sensor <mtu> <log> <step…>
    local mtu=$1 log=$2
    shift 2
    timeout $((STEP_TIMEOUT * 4)) "$DRIVER" sensor "$GATEWAY,psm=$PSM,adapter=$SENSOR_ADAPTER,mtu=$mtu" \
        --timeout "$STEP_TIMEOUT" "$@" >> "$log" 2>&1
}

# --- Tests -------------------------------------------------------------------------------------------------

# Ockam echo/uppercase round trips at one MTU; payloads are random and compared byte for byte by the driver.
exchange_at_mtu() {  # exchange_at_mtu <mtu> <echo sizes>
    local mtu=$1 sizes=$2 log="$WORK/mtu-$1.log"
    : > "$log"
    start_gateway "$mtu" "$log" || { record 1 "exchange at MTU $mtu (gateway did not start)" "$log"; return; }
    sensor "$mtu" "$log" up "expect-mtu=$mtu" "echo=$sizes" "uppercase=ockam over le coc at mtu $mtu" counters
    local status=$?
    grep -E '^(PASS|FAIL)' "$log" | sed 's/^/#   /'
    stop_gateway
    record "$status" "exchange at MTU $mtu (echo $sizes bytes, uppercase)" "$log"
}

# The gateway process is killed: the sensor sees the link drop at once, retries with backoff while the gateway
# is gone, and reconnects (new sender address) when it is back.
peer_killed() {
    local log="$WORK/killed.log" gwlog="$WORK/killed-gw.log"
    : > "$log"
    : > "$gwlog"
    start_gateway 672 "$gwlog" || { record 1 "peer killed (gateway did not start)" "$gwlog"; return; }
    rm -f "$WORK/p1"
    sensor 672 "$log" up echo=100,2000 "mark=$WORK/p1" down up echo=100,2000,20000 counters &
    local sensor_pid=$!
    local status=1
    if wait_for "$STEP_TIMEOUT" test -f "$WORK/p1"; then
        stop_gateway
        # Let at least one reconnect attempt fail while the gateway is away.
        wait_for "$STEP_TIMEOUT" grep -q "EVENT reconnect" "$log"
        start_gateway 672 "$gwlog"
        wait "$sensor_pid"
        status=$?
    else
        kill "$sensor_pid" 2>/dev/null
        wait "$sensor_pid"
    fi
    grep -E '^(PASS|FAIL)|EVENT (link|reconnect)' "$log" | sed 's/^/#   /'
    stop_gateway
    record "$status" "peer process killed: link down, backoff, reconnect, exchange" "$log" "$gwlog"
}

# Power-cycle a controller through mgmt (`btmgmt power off/on`, as bluetoothd or rfkill would) while both
# processes keep running. Power-off disconnects gracefully, so both ends see the link drop. On the gateway side
# the listener must survive (or re-bind); on the sensor side connects fail until the adapter is back.
# (`hciconfig hciN down` would drop the link only locally: btvirt emulates no supervision timeout, so the far end
# would keep a stale connection and stop advertising. On real radios the supervision timeout covers that case.)
controller_cycle() {  # controller_cycle <adapter>
    local adapter=$1 log="$WORK/cycle-$1.log" gwlog="$WORK/cycle-$1-gw.log"
    : > "$log"
    : > "$gwlog"
    start_gateway 672 "$gwlog" || { record 1 "$adapter power cycle (gateway did not start)" "$gwlog"; return; }
    rm -f "$WORK/p2"
    sensor 672 "$log" up echo=500 "mark=$WORK/p2" down up echo=100,5000 counters &
    local sensor_pid=$!
    local status=1
    if wait_for "$STEP_TIMEOUT" test -f "$WORK/p2"; then
        timeout 20 btmgmt --index "${adapter#hci}" power off
        wait_for "$STEP_TIMEOUT" grep -q "EVENT link down" "$log"
        wait_for "$STEP_TIMEOUT" grep -q "EVENT reconnect" "$log"
        timeout 20 btmgmt --index "${adapter#hci}" power on
        advertise
        wait "$sensor_pid"
        status=$?
    else
        kill "$sensor_pid" 2>/dev/null
        wait "$sensor_pid"
    fi
    grep -E '^(PASS|FAIL)|EVENT (link|reconnect)' "$log" | sed 's/^/#   /'
    grep -E 'EVENT listener' "$gwlog" | sed 's/^/#   gateway: /'
    stop_gateway
    record "$status" "$adapter power cycle (btmgmt power off/on): link down, reconnect, exchange" "$log" "$gwlog"
}

# End-to-end secure channel sensor (hci1) → gateway (hci0) → TCP → cloud node, all in this VM. The sensor opens
# an Ockam secure channel to the cloud's `api` listener along `4#<gateway>,psm=… => 1#127.0.0.1:<port> => api`
# and echoes through it at MTU 23 (the handshake messages need fragmentation). Proofs:
#   - the channel's peer is the identifier the cloud printed (the handshake authenticates the cloud's key);
#   - the gateway searches every message it handles for two markers: the plain one (sent as a plain echo through
#     the gateway to the cloud, a positive control) must be seen, the secret one (inside every secure-echo
#     payload) must never be: the gateway only forwarded ciphertext;
#   - the cloud logs the channel as a responder to the sensor's identifier.
secure_channel_via_gateway() {
    local log="$WORK/secure.log" gwlog="$WORK/secure-gw.log" cloudlog="$WORK/secure-cloud.log"
    local plain="plain-marker-$RANDOM$RANDOM" secret="secret-marker-$RANDOM$RANDOM"
    : > "$log"
    : > "$gwlog"
    : > "$cloudlog"
    rm -f "$WORK/cloud.ready"
    "$DRIVER" cloud 127.0.0.1:0 --ready-file "$WORK/cloud.ready" >> "$cloudlog" 2>&1 &
    local cloud_pid=$!
    if ! wait_for 60 test -s "$WORK/cloud.ready"; then
        kill -9 "$cloud_pid" 2>/dev/null
        record 1 "secure channel sensor → gateway → TCP → cloud (cloud did not start)" "$cloudlog"
        return
    fi
    local cloud cloud_id
    read -r cloud cloud_id < "$WORK/cloud.ready"
    note "cloud node $cloud identifier $cloud_id"
    if ! start_gateway 23 "$gwlog" --watch "$plain" --watch "$secret"; then
        kill -9 "$cloud_pid" 2>/dev/null
        record 1 "secure channel sensor → gateway → TCP → cloud (gateway did not start)" "$gwlog"
        return
    fi
    sensor 23 "$log" up "tcp-echo=$cloud,$plain" "secure-channel=$cloud,$cloud_id" \
        "secure-echo=$secret:100,900,5000" counters
    local status=$?
    sleep 0.5  # the cloud reports channels every 0.2 s
    grep -E '^(PASS|FAIL)' "$log" | sed 's/^/#   /'
    grep -E '^(SEEN|CHANNEL)' "$gwlog" "$cloudlog" | sed "s|^$WORK/|#   |"
    local sensor_id
    sensor_id=$(sed -n 's/^IDENTITY //p' "$log")
    if [ "$status" = 0 ] && ! grep -q "^SEEN $plain" "$gwlog"; then
        note "the gateway never saw the plain marker: its watch is broken, so the ciphertext check proves nothing"
        status=1
    fi
    if grep -q "^SEEN $secret" "$gwlog"; then
        note "the gateway saw the secret marker in clear"
        status=1
    fi
    if [ "$status" = 0 ] && ! grep -q "^CHANNEL responder peer=$sensor_id" "$cloudlog"; then
        note "the cloud has no channel from the sensor's identity $sensor_id"
        status=1
    fi
    stop_gateway
    kill -9 "$cloud_pid" 2>/dev/null
    wait "$cloud_pid" 2>/dev/null
    record "$status" "secure channel sensor → gateway (L2CAP, MTU 23) → TCP → cloud: end to end, gateway sees only ciphertext" \
        "$log" "$gwlog" "$cloudlog"
}

# --- Main --------------------------------------------------------------------------------------------------

# The VM brings up no network: the loopback interface is down, so TCP to 127.0.0.1 (the cloud node of the
# secure-channel test) fails until it is up.
ip link set lo up 2>/dev/null || /run/busybox ifconfig lo 127.0.0.1 up 2>/dev/null || note "cannot bring lo up"
ADDRS=$("$HERE/btvirt-up.sh") || { echo "not ok - btvirt controllers"; FAILED=1; finish; }
note "controllers: $ADDRS"
GATEWAY=$(address_of "$GATEWAY_ADAPTER")
advertise
note "gateway $GATEWAY_ADAPTER $GATEWAY psm $PSM, sensor $SENSOR_ADAPTER $(address_of "$SENSOR_ADAPTER")"

TESTS=("$@")
[ ${#TESTS[@]} -eq 0 ] && TESTS=(mtu23 mtu672 mtu65535 killed cycle-gateway cycle-sensor secure-channel)
for t in "${TESTS[@]}"; do
    started=$SECONDS
    case "$t" in
        mtu23) exchange_at_mtu 23 1,22,23,200,900,3000 ;;
        mtu672) exchange_at_mtu 672 1,600,670,671,672,2000,30000 ;;
        mtu65535) exchange_at_mtu 65535 1,65000,65534,65535,65536,200000 ;;
        killed) peer_killed ;;
        cycle-gateway) controller_cycle "$GATEWAY_ADAPTER" ;;
        cycle-sensor) controller_cycle "$SENSOR_ADAPTER" ;;
        secure-channel) secure_channel_via_gateway ;;
        *) record 1 "unknown test $t" ;;
    esac
    note "$t took $((SECONDS - started)) s"
done
finish
