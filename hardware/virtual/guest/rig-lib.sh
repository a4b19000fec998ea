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

# advertising_resumed: after a power cycle of the gateway's adapter, arm advertising again, twice a second apart:
# under TCG on a loaded host the first attempt, made while the controller is still finishing its power-on, does not
# always take (and btmgmt's non-interactive `info` prints nothing here to check it by). Each step is idempotent.
advertising_resumed() {
    advertise
    sleep 1
    advertise
}

# le_connection_gone <peer address>: the gateway's LE connection to the peer is gone (disconnected through mgmt if it
# lingers after its last channel closed, as the kernel lets it for a few seconds).
le_connection_gone() {
    timeout 20 btmgmt --index "${GATEWAY_ADAPTER#hci}" disconnect -t 1 "$1" >/dev/null 2>&1
    wait_for 30 sh -c "! timeout 20 btmgmt --index '${GATEWAY_ADAPTER#hci}' con | grep -q '$1'"
}
