#!/usr/bin/env bash
# Checks a built ockam-edge .deb the way an operator meets it (make package-check; CI's package stage). Installs it
# on THIS machine, so it runs only as root and only when asked: CI=true or PACKAGE_CHECK_INSTALL=1.
#
#   1. lintian: no error and no warning beyond the accepted ones (listed below, with the reason);
#   2. apt install: the user, group and directories exist (sysusers.d/tmpfiles.d), every file's owner and mode;
#   3. the units pass systemd-analyze verify, the rules udev's parser and the fake-adapter runs (udev/check_rules.py);
#   4. the binary runs with no Swift toolchain visible (a private mount namespace hides it) and needs no Swift library;
#   5. the shipped configuration validates as the ockam-edge user, and the agent runs on it as that user: it answers
#      on 127.0.0.1:4000 and `status` works through its control socket;
#   6. remove keeps the configuration and the vault; purge removes the configuration, says where the vault is, and
#      leaves it.
# Usage: packaging/check-deb.sh [dist/ockam-edge_<version>_<arch>.deb]
set -euo pipefail
cd "$(dirname "$0")/.."
deb=${1:-$(ls -t dist/ockam-edge_*.deb 2>/dev/null | head -1)}
[ -f "$deb" ] || { echo "no package: run make package first" >&2; exit 2; }
if [ "$(id -u)" != 0 ] || { [ "${CI:-}" != true ] && [ "${PACKAGE_CHECK_INSTALL:-}" != 1 ]; }; then
    echo "check-deb.sh installs $deb system-wide: run it as root with PACKAGE_CHECK_INSTALL=1 (CI sets CI=true)" >&2
    exit 2
fi
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

# Accepted lintian warnings:
#   initial-upload-closes-no-bugs: the package is built from this tree, not uploaded to Debian (no ITP bug to close).
ACCEPTED=initial-upload-closes-no-bugs
echo "== lintian"
if lintian --fail-on error,warning --suppress-tags "$ACCEPTED" --display-level ">=warning" "$deb" 2>&1 \
        | grep -v "running with root privileges"; then :; fi
if lintian --fail-on error,warning --suppress-tags "$ACCEPTED" "$deb" >/dev/null 2>&1; then
    ok "lintian: no errors, no warnings beyond $ACCEPTED"
else
    fail "lintian reported errors or warnings"
fi

echo "== install"
dpkg -r ockam-edge >/dev/null 2>&1 || true
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$deb" > /tmp/ockam-edge-install.log 2>&1 \
    || { cat /tmp/ockam-edge-install.log; fail "apt-get install"; exit 1; }
grep -q "configure /etc/ockam-edge/agent.yaml, then: systemctl enable --now ockam-edge-agent" /tmp/ockam-edge-install.log \
    && ok "postinst names the next step" || fail "postinst did not say how to enable the agent"

getent group ockam-edge >/dev/null && ok "group ockam-edge" || fail "no group ockam-edge"
[ "$(getent passwd ockam-edge | cut -d: -f6,7)" = "/var/lib/ockam-edge:/usr/sbin/nologin" ] \
    && ok "user ockam-edge (home /var/lib/ockam-edge, no shell)" || fail "user ockam-edge: $(getent passwd ockam-edge)"

expect_stat() {  # path owner:group mode
    local actual
    actual=$(stat -c '%U:%G %a' "$1" 2>/dev/null || echo missing)
    [ "$actual" = "$2 $3" ] || fail "$1: $actual, expected $2 $3"
}
expect_stat /usr/bin/ockam-edge root:root 755
expect_stat /etc/ockam-edge root:ockam-edge 750
expect_stat /etc/ockam-edge/agent.yaml root:ockam-edge 640
expect_stat /var/lib/ockam-edge ockam-edge:ockam-edge 700
checked=0
while read -r path; do
    case "$path" in /etc/ockam-edge|/etc/ockam-edge/agent.yaml|/usr/bin/ockam-edge) continue ;; esac
    [ -L "$path" ] && continue
    if [ -d "$path" ]; then expect_stat "$path" root:root 755; else expect_stat "$path" root:root 644; fi
    checked=$((checked + 1))
done < <(dpkg -L ockam-edge | grep -v '^/\.$')
ok "owner and mode of $checked more paths (root:root, 0644 files, 0755 directories)"
for file in /lib/systemd/system/ockam-edge-agent.service /lib/systemd/system/ockam-edge-serial@.service \
        /lib/udev/rules.d/70-ockam-edge-serial.rules /usr/share/ockam-edge/udev/71-ockam-edge-serial-nodes.rules \
        /usr/lib/sysusers.d/ockam-edge.conf /usr/lib/tmpfiles.d/ockam-edge.conf \
        /usr/share/man/man1/ockam-edge.1.gz /usr/share/man/man5/ockam-edge-agent.yaml.5.gz \
        /usr/share/bash-completion/completions/ockam-edge /usr/share/zsh/vendor-completions/_ockam-edge \
        /usr/share/fish/vendor_completions.d/ockam-edge.fish /usr/share/doc/ockam-edge/copyright; do
    [ -f "$file" ] || fail "missing $file"
done
grep -q '^ExecStart=/usr/bin/ockam-edge agent --config /etc/ockam-edge/agent.yaml$' \
    /lib/systemd/system/ockam-edge-agent.service && ok "the agent unit runs /usr/bin/ockam-edge" \
    || fail "the agent unit does not run /usr/bin/ockam-edge"
for page in /usr/share/man/man1/ockam-edge.1.gz /usr/share/man/man5/ockam-edge-agent.yaml.5.gz; do
    warnings=$(zcat "$page" | groff -man -Tutf8 -ww -z 2>&1)
    [ -z "$warnings" ] && ok "$(basename "$page") renders without a warning" || fail "$page: $warnings"
done
bash -c 'source /usr/share/bash-completion/completions/ockam-edge && complete -p ockam-edge' >/dev/null \
    && ok "bash completion loads" || fail "bash completion does not load"

echo "== units and rules"
verify=$(systemd-analyze verify --man=no ockam-edge-agent.service ockam-edge-serial@ttyUSB0.service 2>&1) \
    && [ -z "$verify" ] && ok "systemd-analyze verify: both units, no warnings" || fail "systemd-analyze verify: $verify"
if python3 udev/check_rules.py --tools /lib/udev/rules.d/70-ockam-edge-serial.rules \
        /lib/systemd/system/ockam-edge-serial@.service /lib/systemd/system/ockam-edge-agent.service \
        /usr/share/ockam-edge/udev/71-ockam-edge-serial-nodes.rules; then
    ok "installed rules and units pass udev/check_rules.py"
else
    fail "installed rules and units fail udev/check_rules.py"
fi

echo "== the binary without a Swift toolchain"
version=$(dpkg-deb -f "$deb" Version)
if ldd /usr/bin/ockam-edge | grep -i swift; then fail "the binary loads Swift libraries"; else ok "ldd: no Swift library"; fi
swift_bin=$(command -v swift || true)
if [ -n "$swift_bin" ]; then
    toolchain=$(dirname "$(dirname "$(dirname "$(readlink -f "$swift_bin")")")")  # <root>/usr/bin/swift
    case "$toolchain" in /|/usr) fail "the toolchain is installed in $toolchain, which cannot be hidden" ;; *)
        out=$(unshare -m sh -c "mount -t tmpfs tmpfs '$toolchain' && ! test -e '$toolchain/usr/bin/swift' \
            && env -i PATH=/usr/bin:/bin /usr/bin/ockam-edge --version" 2>&1) \
            && [ "$out" = "ockam-edge ${version%-*}" ] && ok "runs with $toolchain hidden: $out" \
            || fail "with $toolchain hidden: $out" ;;
    esac
else
    out=$(/usr/bin/ockam-edge --version) && ok "runs on a machine without Swift: $out" || fail "--version: $out"
fi

echo "== the shipped configuration and the agent, as user ockam-edge"
runuser -u ockam-edge -- /usr/bin/ockam-edge agent --config /etc/ockam-edge/agent.yaml --check-config \
    && ok "--check-config as ockam-edge" || fail "--check-config as ockam-edge"
log=$(mktemp)
runuser -u ockam-edge -- env OCKAM_EDGE_EXIT_WITH_PARENT=1 /usr/bin/ockam-edge agent --config /etc/ockam-edge/agent.yaml \
    > "$log" 2>&1 &
agent=$!
up=""
for _ in $(seq 1 150); do
    if runuser -u ockam-edge -- /usr/bin/ockam-edge status --from gateway --state-dir /var/lib/ockam-edge >/dev/null 2>&1; then
        up=yes; break
    fi
    kill -0 "$agent" 2>/dev/null || break
    sleep 0.2
done
if [ -n "$up" ]; then
    ok "the agent runs as ockam-edge; status answers through /var/lib/ockam-edge/nodes/gateway.sock"
    reply=$(/usr/bin/ockam-edge message send /ip4/127.0.0.1/tcp/4000/service/echo hello 2>&1) \
        && [ "$reply" = hello ] && ok "echo through 127.0.0.1:4000" || fail "echo: $reply"
    [ -d /var/lib/ockam-edge/vault ] && [ "$(stat -c '%U %a' /var/lib/ockam-edge/vault)" = "ockam-edge 700" ] \
        && ok "vault created in /var/lib/ockam-edge/vault (0700)" || fail "vault: $(ls -ld /var/lib/ockam-edge/vault 2>&1)"
else
    fail "the agent did not come up: $(cat "$log")"
fi
kill -TERM "$agent" 2>/dev/null || true
wait "$agent" 2>/dev/null || true
rm -f "$log"

echo "== remove and purge"
dpkg -r ockam-edge >/dev/null
[ ! -e /usr/bin/ockam-edge ] && [ ! -e /lib/systemd/system/ockam-edge-agent.service ] \
    && [ ! -e /lib/udev/rules.d/70-ockam-edge-serial.rules ] && ok "remove: program, units and rules gone" \
    || fail "remove left program files"
[ -f /etc/ockam-edge/agent.yaml ] && [ -d /var/lib/ockam-edge/vault ] \
    && ok "remove: configuration and vault kept" || fail "remove did not keep the configuration and the vault"
purge=$(dpkg --purge ockam-edge 2>&1)
echo "$purge" | grep -q "remain in /var/lib/ockam-edge" && ok "purge says where the vault is" \
    || fail "purge did not mention the vault: $purge"
[ ! -e /etc/ockam-edge ] && ok "purge: /etc/ockam-edge gone" || fail "purge left $(ls -la /etc/ockam-edge)"
[ -d /var/lib/ockam-edge/vault ] && ok "purge: the vault is left to the operator" || fail "purge deleted the vault"
left=$(dpkg -L ockam-edge 2>/dev/null || true)
[ -z "$left" ] && ok "dpkg knows no file of ockam-edge any more" || fail "dpkg still lists files: $left"
rm -rf /var/lib/ockam-edge  # this check's own agent state, not an operator's

if [ "$failures" -gt 0 ]; then echo "check-deb: $failures failure(s)"; exit 1; fi
echo "check-deb: OK"
