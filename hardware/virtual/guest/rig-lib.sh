# Helpers shared by the guest scripts of the BLE rig (suite.sh) and of bench suite 7 (bench/ble-guest.sh).
# Source it after setting GATEWAY_ADAPTER (the controller that listens and advertises, e.g. hci0).

# wait_for <seconds> <command…>: polls a condition every 0.1 s, bounded.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.1
    done
}

address_of() { hciconfig "$1" | sed -n 's/.*BD Address: \([0-9A-F:]*\).*/\1/p'; }

# The gateway must advertise connectably or connect() hangs for 40 s (rig notes, pitfall 5). Advertising enabled
# through mgmt is restarted by the kernel after each disconnection; advertise() also re-arms it after a
# controller power cycle.
# `hciconfig leadv` then makes sure it is on right now (it fails harmlessly when advertising already runs).
advertise() {
    timeout 20 btmgmt --index "${GATEWAY_ADAPTER#hci}" connectable on >/dev/null 2>&1
    timeout 20 btmgmt --index "${GATEWAY_ADAPTER#hci}" advertising on >/dev/null 2>&1
    hciconfig "$GATEWAY_ADAPTER" leadv 0 >/dev/null 2>&1
    return 0
}
