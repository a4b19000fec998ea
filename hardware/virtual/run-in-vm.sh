#!/usr/bin/env bash
# run-in-vm.sh <command> [args…]: boots the Debian kernel in QEMU (TCG) on the host's root filesystem (read-only
# 9p + tmpfs overlay), runs the command there as root in the same working directory, streams its stdout and
# stderr, and exits with its exit status.
#
# Exit status: the command's; 124 if the VM hit BLE_VM_TIMEOUT; 125 if the VM died before the command finished
# (the kernel console is printed then); 126 if the rig cannot run here (no QEMU, no kernel).
#
# Environment:
#   BLE_VM_TIMEOUT   seconds before QEMU is killed (default 600)
#   BLE_VM_CACHE     kernel/initramfs cache (default /var/tmp/ockam-edge-ble-vm; see setup.sh)
#   BLE_VM_MEM       guest RAM in MiB (default 512; 96 is the floor)
#   BLE_VM_SMP       guest CPUs (default 2)
#   BLE_VM_ACCEL     tcg (default) or kvm (machines with real KVM; never kvm_pvm, see the rig notes)
#   BLE_VM_RW        extra host directories shared read-write, colon-separated (the cwd is shared read-write
#                    when it is not /)
#   BLE_VM_PASSENV   names of extra environment variables to pass into the guest, space-separated
#   BLE_VM_SERIAL    the guest's second 16550 UART (/dev/ttyS1): unix:PATH (default unix:$CTL/ttyS1.sock,
#                    a listening socket the host connects to), pty (QEMU picks /dev/pts/N, printed on stderr
#                    and written to $BLE_VM_SERIAL_INFO if set), or none
#   BLE_VM_EXTRA     extra QEMU arguments (word-split)
#   BLE_VM_KEEP_CTL  keep the control directory (logs) after the run
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TIMEOUT=${BLE_VM_TIMEOUT:-600}

if [ $# -eq 0 ]; then
    echo "usage: $0 <command> [args…]" >&2
    exit 2
fi

if ! CACHE=$("$HERE/setup.sh"); then
    echo "run-in-vm: rig setup failed (see above); the virtual rig cannot run on this machine" >&2
    exit 126
fi
if ! command -v qemu-system-x86_64 >/dev/null; then
    echo "run-in-vm: qemu-system-x86_64 is not available; the virtual rig cannot run on this machine" >&2
    exit 126
fi
KVER=$(cat "$CACHE/kver")
KERNEL="$CACHE/vmlinux"
[ -f "$KERNEL" ] || KERNEL="$CACHE/kroot/boot/vmlinuz-$KVER"

CTL=$(mktemp -d "${TMPDIR:-/tmp}/ble-vm.XXXXXX")
cleanup() {
    [ -n "${QEMU_PID:-}" ] && kill "$QEMU_PID" 2>/dev/null
    [ -n "${BLE_VM_KEEP_CTL:-}" ] && { echo "run-in-vm: control directory kept: $CTL" >&2; return; }
    rm -rf "$CTL"
}
trap cleanup EXIT
touch "$CTL/stdout" "$CTL/stderr"

# The guest's environment and command.
{
    echo "export PATH=$(printf %q "$PATH") HOME=/root LANG=C.UTF-8 TERM=dumb BLE_VM=1 BLE_VM_TTY=/dev/ttyS1"
    for name in ${BLE_VM_PASSENV:-}; do
        [ -n "${!name+x}" ] && echo "export $name=$(printf %q "${!name}")"
    done
    echo "cd $(printf %q "$PWD")"
    printf '%q ' "$@"
    echo
} > "$CTL/cmd.sh"
cat > "$CTL/stage2.sh" <<'EOF'
# Stage 2 (PID 1 in the switched root): run the command, record its status, power off synchronously.
echo /sbin/modprobe > /proc/sys/kernel/modprobe
hostname ble-vm 2>/dev/null
/bin/bash /run/vm-ctl/cmd.sh > /run/vm-ctl/stdout 2> /run/vm-ctl/stderr < /dev/null
echo $? > /run/vm-ctl/rc.tmp
mv /run/vm-ctl/rc.tmp /run/vm-ctl/rc
sync
/run/busybox poweroff -f
EOF

# Read-write shares: the cwd (unless /) plus BLE_VM_RW.
shares=()
[ "$PWD" != / ] && shares+=("$PWD")
IFS=: read -r -a extra_rw <<< "${BLE_VM_RW:-}"
for d in "${extra_rw[@]}"; do [ -n "$d" ] && shares+=("$(cd "$d" && pwd)"); done
: > "$CTL/rw-paths"
share_args=()
for i in "${!shares[@]}"; do
    echo "${shares[$i]}" >> "$CTL/rw-paths"
    share_args+=(-fsdev "local,id=rw$i,path=${shares[$i]},security_model=none,multidevs=remap"
                 -device "virtio-9p-pci,fsdev=rw$i,mount_tag=rw$i")
done

serial_args=()
SERIAL=${BLE_VM_SERIAL:-unix:$CTL/ttyS1.sock}
case "$SERIAL" in
    none) ;;
    pty) serial_args=(-chardev pty,id=ser1 -serial chardev:ser1) ;;
    unix:*) serial_args=(-chardev "socket,id=ser1,path=${SERIAL#unix:},server=on,wait=off" -serial chardev:ser1) ;;
    *) echo "run-in-vm: BLE_VM_SERIAL must be unix:PATH, pty or none" >&2; exit 2 ;;
esac

accel=(-machine pc,accel=tcg -cpu max)
if [ "${BLE_VM_ACCEL:-tcg}" = kvm ]; then
    accel=(-machine pc,accel=kvm -cpu host,-arch-capabilities)
fi
bios=()
[ -f /usr/share/qemu/qboot.rom ] && bios=(-bios /usr/share/qemu/qboot.rom)

# shellcheck disable=SC2086
timeout --signal=KILL "$TIMEOUT" qemu-system-x86_64 -nodefaults -no-user-config -display none \
    "${accel[@]}" -smp "${BLE_VM_SMP:-2}" -m "${BLE_VM_MEM:-512}" "${bios[@]}" \
    -kernel "$KERNEL" -initrd "$CACHE/initramfs.cpio.gz" \
    -append "console=ttyS0 panic=-1 loglevel=4 rdinit=/init vm.modroot=$CACHE/kroot vm.kver=$KVER vm.rw=${#shares[@]}" \
    -serial "file:$CTL/console.log" "${serial_args[@]}" \
    -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
    -fsdev "local,id=vmctl,path=$CTL,security_model=none" -device virtio-9p-pci,fsdev=vmctl,mount_tag=vmctl \
    "${share_args[@]}" ${BLE_VM_EXTRA:-} \
    -no-reboot < /dev/null > "$CTL/qemu.out" 2>&1 &
QEMU_PID=$!

# Stream the guest's output while it runs.
tail -n +1 -s 0.2 -f --pid="$QEMU_PID" "$CTL/stdout" &
TAIL_OUT=$!
tail -n +1 -s 0.2 -f --pid="$QEMU_PID" "$CTL/stderr" >&2 &
TAIL_ERR=$!
if [ "$SERIAL" = pty ]; then
    for _ in $(seq 50); do
        pty=$(sed -n 's/.*char device redirected to \(\/dev\/pts\/[0-9]*\) (label ser1).*/\1/p' "$CTL/qemu.out")
        [ -n "$pty" ] && break
        sleep 0.1
    done
    echo "run-in-vm: guest /dev/ttyS1 is host ${pty:-?}" >&2
    [ -n "${BLE_VM_SERIAL_INFO:-}" ] && echo "$pty" > "$BLE_VM_SERIAL_INFO"
fi
wait "$QEMU_PID"
qemu_status=$?
QEMU_PID=
wait "$TAIL_OUT" "$TAIL_ERR" 2>/dev/null

if [ -f "$CTL/rc" ]; then
    rc=$(cat "$CTL/rc")
    echo "run-in-vm: exit status $rc" >&2
    exit "$rc"
fi
if [ "$qemu_status" = 137 ]; then
    echo "run-in-vm: TIMEOUT after ${TIMEOUT}s; VM killed. Last console lines:" >&2
    tail -n 30 "$CTL/console.log" >&2
    exit 124
fi
echo "run-in-vm: the VM stopped (qemu status $qemu_status) before the command finished. QEMU said:" >&2
tail -n 20 "$CTL/qemu.out" >&2
echo "run-in-vm: last console lines:" >&2
tail -n 40 "$CTL/console.log" >&2
exit 125
