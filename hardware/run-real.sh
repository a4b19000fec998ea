#!/usr/bin/env bash
# The BLE suite on real boards (see hardware/README.md).
#
#   On the gateway machine:  hardware/run-real.sh --gateway <adapter> [psm]
#       makes <adapter> advertise connectably and serves echo/uppercase on an L2CAP LE CoC listener
#       (receive MTU 65535) until interrupted.
#   On the peer machine:     hardware/run-real.sh <adapter> <gateway-address>[/random] [psm]
#       runs the tests against that gateway from <adapter>; prints `N passed, N failed`.
#
# Needs root (btmgmt/hciconfig, SO_SNDBUFFORCE). BLE_RIG_DRIVER names a built driver; otherwise it is built here
# (release). BLE_RIG_STEP_TIMEOUT bounds every step (default 60 s).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PACKAGE=${BLE_RIG_PACKAGE:-$(cd "$HERE/.." && pwd)}
STEP_TIMEOUT=${BLE_RIG_STEP_TIMEOUT:-60}

usage() {
    echo "usage: $0 <adapter> <gateway-address>[/random] [psm]    (tests, on the peer machine)" >&2
    echo "       $0 --gateway <adapter> [psm]                       (gateway, on the other machine)" >&2
    exit 2
}

driver() {
    if [ -n "${BLE_RIG_DRIVER:-}" ]; then
        echo "$BLE_RIG_DRIVER"
        return
    fi
    local product=ble-rig-driver
    (cd "$PACKAGE" && swift build -c release --product "$product" >&2) \
        || { product=BLERigDriver; (cd "$PACKAGE" && swift build -c release --product "$product" >&2); } || return 1
    echo "$(cd "$PACKAGE" && swift build -c release --show-bin-path)/$product"
}

[ $# -ge 2 ] || usage
DRIVER=$(driver) || { echo "could not build the rig driver"; echo "0 passed, 1 failed"; exit 1; }

if [ "$1" = --gateway ]; then
    adapter=$2
    psm=${3:-0x81}
    index=${adapter#hci}
    btmgmt --index "$index" power on >/dev/null
    btmgmt --index "$index" le on >/dev/null
    btmgmt --index "$index" connectable on >/dev/null
    btmgmt --index "$index" advertising on >/dev/null || hciconfig "$adapter" leadv 0
    echo "gateway: $adapter $(hciconfig "$adapter" | sed -n 's/.*BD Address: \([0-9A-F:]*\).*/\1/p') psm $psm"
    exec "$DRIVER" gateway "$adapter,psm=$psm,mtu=65535"
fi

ADAPTER=$1
PEER=$2
PSM=${3:-0x81}
PASSED=0
FAILED=0
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

record() {
    if [ "$1" = 0 ]; then PASSED=$((PASSED + 1)); echo "ok - $2"; else FAILED=$((FAILED + 1)); echo "not ok - $2"; fi
    grep -E '^(PASS|FAIL)|EVENT (link|reconnect)' "$3" | sed 's/^/#   /'
}

sensor() {  # sensor <mtu> <log> <step…>
    local mtu=$1 log=$2
    shift 2
    timeout $((STEP_TIMEOUT * 4)) "$DRIVER" sensor "$PEER,psm=$PSM,adapter=$ADAPTER,mtu=$mtu" \
        --timeout "$STEP_TIMEOUT" "$@" >> "$log" 2>&1
}

# wait_for (shared with the virtual rig's guest scripts)
source "$HERE/virtual/guest/rig-lib.sh"

# 1-3. Exchanges with our receive MTU at 23, 672 and 65535: the gateway's SDUs to us are at most that size.
for spec in "23 1,22,23,200,900,3000" "672 1,600,672,2000,30000" "65535 1,65000,65535,65536,200000"; do
    set -- $spec
    log="$WORK/mtu-$1.log"
    sensor "$1" "$log" up "expect-rx-mtu=$1" "echo=$2" "uppercase=ockam over le coc" counters
    record $? "exchange with receive MTU $1 (echo $2 bytes, uppercase)" "$log"
done

# 4. Local adapter power cycle: link down, reconnect with backoff once the adapter is back, exchange again.
log="$WORK/cycle.log"
sensor 672 "$log" up echo=500 "mark=$WORK/p" down up echo=100,5000 counters &
pid=$!
if wait_for "$STEP_TIMEOUT" test -f "$WORK/p"; then
    hciconfig "$ADAPTER" down
    wait_for "$STEP_TIMEOUT" grep -q "EVENT link down" "$log"
    wait_for "$STEP_TIMEOUT" grep -q "EVENT reconnect" "$log"
    hciconfig "$ADAPTER" up
fi
wait "$pid"
record $? "$ADAPTER power cycle: link down, reconnect, exchange" "$log"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
