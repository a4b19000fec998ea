#!/usr/bin/env bash
# rig-suite.sh [test…]: the virtual BLE hardware-in-the-loop suite (`make test-rig`).
#
# Builds the rig driver on the host (release) unless BLE_RIG_DRIVER names a built one, boots the QEMU VM
# (run-in-vm.sh), creates two btvirt LE controllers there and runs guest/suite.sh. Prints `N passed, N failed`.
# If this machine cannot run the rig (no QEMU, no kernel package, VM died or timed out) it says so and fails:
# it never reports a pass it did not see.
#
# Environment: BLE_RIG_DRIVER (path to a built ble-rig-driver), BLE_RIG_OCKAM_EDGE (the ockam-edge binary the
# pair-ble test runs; default: next to the driver, built with it), BLE_RIG_PACKAGE (package to build it from,
# default: the checkout this script is in), BLE_VM_TIMEOUT (default 900 s), BLE_RIG_STEP_TIMEOUT, and the
# BLE_VM_* variables of run-in-vm.sh. BLE_RIG_CUTS, BLE_RIG_CUT_HOLD and BLE_RIG_CUT_MAX_RECONNECTS size the
# `cuts` test (guest/suite.sh).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PACKAGE=${BLE_RIG_PACKAGE:-$(cd "$HERE/../.." && pwd)}
export BLE_VM_TIMEOUT=${BLE_VM_TIMEOUT:-900}

fail_rig() {
    echo "rig: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

DRIVER=${BLE_RIG_DRIVER:-}
if [ -z "$DRIVER" ]; then
    echo "rig: building the rig driver in $PACKAGE (release)" >&2
    product=ble-rig-driver
    (cd "$PACKAGE" && swift build -c release --product "$product" >&2) \
        || { product=BLERigDriver; (cd "$PACKAGE" && swift build -c release --product "$product" >&2); } \
        || fail_rig "could not build the rig driver"
    DRIVER="$(cd "$PACKAGE" && swift build -c release --show-bin-path)/$product"
fi
[ -x "$DRIVER" ] || fail_rig "rig driver $DRIVER is not an executable"
# The pair-ble test runs the ockam-edge CLI: BLE_RIG_OCKAM_EDGE, else the one built next to the driver.
export BLE_RIG_OCKAM_EDGE=${BLE_RIG_OCKAM_EDGE:-$(dirname "$DRIVER")/ockam-edge}
if [ ! -x "$BLE_RIG_OCKAM_EDGE" ] && [ -z "${BLE_RIG_DRIVER:-}" ]; then
    (cd "$PACKAGE" && swift build -c release --product ockam-edge >&2) || fail_rig "could not build ockam-edge"
fi

export BLE_VM_PASSENV="${BLE_VM_PASSENV:-} BLE_RIG_STEP_TIMEOUT BLE_RIG_OCKAM_EDGE BLE_RIG_LOG BLE_RIG_CUTS BLE_RIG_CUT_HOLD BLE_RIG_CUT_MAX_RECONNECTS BLE_RIG_FUZZ_SECONDS BLE_RIG_FUZZ_SEED BLE_RIG_BUMBLE_PYTHON"
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
started=$SECONDS
"$HERE/run-in-vm.sh" "$HERE/guest/suite.sh" "$DRIVER" "$@" | tee "$OUT"
status=${PIPESTATUS[0]}
echo "rig: VM run took $((SECONDS - started)) s (exit status $status)" >&2
case "$status" in
    124) fail_rig "the VM timed out after ${BLE_VM_TIMEOUT}s" ;;
    125) fail_rig "the VM died before the suite finished (kernel console above)" ;;
    126) fail_rig "this machine cannot run the virtual rig (QEMU or the kernel package is unavailable)" ;;
esac
grep -Eq '^[0-9]+ passed, [0-9]+ failed$' "$OUT" || fail_rig "the suite printed no summary"
exit "$status"
