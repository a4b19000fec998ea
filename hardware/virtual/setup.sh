#!/usr/bin/env bash
# Prepares the virtual BLE rig (idempotent; a second run takes well under a second):
#   1. installs the Debian packages it needs, only those missing;
#   2. downloads the Debian kernel package (not installed: unpacked into the cache) and runs depmod;
#   3. extracts a PVH-bootable vmlinux from the bzImage (saves ~3 s per boot under TCG);
#   4. builds a tiny busybox initramfs that mounts the host root over 9p;
#   5. makes a Python venv with Bumble (pinned) for the independent BLE host of the `hostile` and `ble-fuzz` cases.
# Cache: $BLE_VM_CACHE (default /var/tmp/ockam-edge-ble-vm), ~0.5 GB.
set -euo pipefail

CACHE=${BLE_VM_CACHE:-/var/tmp/ockam-edge-ble-vm}
PACKAGES=(qemu-system-x86 bluez bluez-test-tools busybox-static cpio kmod xz-utils python3-venv)
# Bumble drives a controller through the HCI user channel with its own host stack. Pinned: the rig's peer uses its
# L2CAP internals (raw K-frames on a channel), which may change between releases.
BUMBLE_VERSION=0.0.236
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

log() { echo "[rig-setup] $*" >&2; }

# 1. Packages.
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

mkdir -p "$CACHE"

# 2. Kernel: whatever linux-image-amd64 depends on today (never hard-coded; see the rig notes on kernel drift).
if [ ! -f "$CACHE/kver" ] || [ ! -d "$CACHE/kroot/lib/modules/$(cat "$CACHE/kver")" ]; then
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    if [ -z "$pkg" ]; then
        $SUDO apt-get update -qq
        pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    fi
    [ -n "$pkg" ] || { log "cannot resolve the kernel package behind linux-image-amd64"; exit 1; }
    log "fetching $pkg"
    rm -rf "$CACHE/kroot" "$CACHE/deb"
    mkdir -p "$CACHE/deb" "$CACHE/kroot"
    (cd "$CACHE/deb" && apt-get download -qq "$pkg" >&2)
    dpkg-deb -x "$CACHE"/deb/*.deb "$CACHE/kroot"
    rm -rf "$CACHE/deb"
    kver=$(ls "$CACHE/kroot/lib/modules" | head -n1)
    depmod -b "$CACHE/kroot" "$kver"
    echo "$kver" > "$CACHE/kver"
    rm -f "$CACHE/vmlinux" "$CACHE/initramfs.cpio.gz"
fi
KVER=$(cat "$CACHE/kver")
KROOT="$CACHE/kroot"
MODDIR="$KROOT/lib/modules/$KVER"

# 3. PVH vmlinux from the bzImage's xz payload (falls back to the bzImage when that fails).
if [ ! -f "$CACHE/vmlinux" ] && [ ! -f "$CACHE/vmlinux.none" ]; then
    if /usr/bin/python3 - "$KROOT/boot/vmlinuz-$KVER" "$CACHE/vmlinux" <<'EOF'
import lzma, sys
data = open(sys.argv[1], "rb").read()
start = data.find(b"\xfd7zXZ\x00")
if start < 0:
    sys.exit(1)
decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
elf = decompressor.decompress(data[start:])
if not elf.startswith(b"\x7fELF") or b"Xen\x00" not in elf:  # PVH entry is an ELF note named "Xen"
    sys.exit(1)
open(sys.argv[2], "wb").write(elf)
EOF
    then
        log "extracted PVH vmlinux"
    else
        log "no PVH vmlinux; booting the bzImage (+3 s per boot)"
        touch "$CACHE/vmlinux.none"
    fi
fi

# 4. initramfs: busybox + the modules to mount 9p over virtio-pci and overlayfs (dependency closure from
#    modules.dep, skipping built-ins), and the stage-1 init.
if [ ! -f "$CACHE/initramfs.cpio.gz" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/bin" "$work/proc" "$work/sys" "$work/dev" "$work/mods" "$work/lower" "$work/upper" "$work/newroot"
    cp /bin/busybox "$work/bin/busybox"
    /usr/bin/python3 - "$MODDIR" "$work/mods" <<'EOF' > "$work/mods/order"
import os, shutil, sys, lzma
moddir, out = sys.argv[1], sys.argv[2]
builtin = set()
with open(os.path.join(moddir, "modules.builtin")) as f:
    for line in f:
        builtin.add(os.path.basename(line.strip()).split(".ko")[0].replace("-", "_"))
deps, paths = {}, {}
with open(os.path.join(moddir, "modules.dep")) as f:
    for line in f:
        mod, _, rest = line.partition(":")
        name = os.path.basename(mod).split(".ko")[0].replace("-", "_")
        paths[name] = mod
        deps[name] = [os.path.basename(d).split(".ko")[0].replace("-", "_") for d in rest.split()]
wanted = ["virtio_pci", "9pnet_virtio", "9p", "overlay"]
order, seen = [], set()
def visit(name):
    if name in seen or name in builtin:
        return
    seen.add(name)
    if name not in paths:
        sys.exit(f"module {name} not found")
    for d in deps[name]:
        visit(d)
    order.append(name)
for w in wanted:
    visit(w)
for name in order:
    src = os.path.join(moddir, paths[name])
    dst = os.path.join(out, name + ".ko")
    if src.endswith(".xz"):
        open(dst, "wb").write(lzma.decompress(open(src, "rb").read()))
    elif src.endswith(".zst"):
        sys.exit("zstd-compressed modules are not supported")
    else:
        shutil.copy(src, dst)
    print(name)
EOF
    cp "$(dirname "$0")/guest/init" "$work/init"
    chmod +x "$work/init"
    (cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) > "$CACHE/initramfs.cpio.gz.tmp"
    mv "$CACHE/initramfs.cpio.gz.tmp" "$CACHE/initramfs.cpio.gz"
    log "initramfs: $(tr '\n' ' ' < "$work/mods/order")"
fi

# 5. Bumble, in a venv of Debian's python3 (which has AF_BLUETOOTH; a pyenv python may not). PyPI only.
VENV="$CACHE/bumble-venv"
if [ "$(cat "$VENV/.bumble-version" 2>/dev/null)" != "$BUMBLE_VERSION" ]; then
    rm -rf "$VENV"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "bumble==$BUMBLE_VERSION" >&2
    echo "$BUMBLE_VERSION" > "$VENV/.bumble-version"
    log "bumble $BUMBLE_VERSION in $VENV"
fi

# Rebuild the initramfs when guest/init changes.
if [ "$(dirname "$0")/guest/init" -nt "$CACHE/initramfs.cpio.gz" ]; then
    rm -f "$CACHE/initramfs.cpio.gz"
    exec "$0" "$@"
fi

echo "$CACHE"
