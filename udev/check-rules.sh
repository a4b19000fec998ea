#!/bin/sh
# Checks udev/70-ockam-edge-serial.rules and udev/ockam-edge-serial@.service: static syntax and policy checks
# (always), then the real tools where present (udevadm test with umockdev fake adapters, systemd-analyze verify).
# Prints what was verified and what was skipped. OCKAM_EDGE_UDEV_STRICT=1 makes a skipped check a failure.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
strict=""
[ "${OCKAM_EDGE_UDEV_STRICT:-0}" = 1 ] && strict="--strict"
exec python3 "$here/check_rules.py" --tools $strict "$@"
