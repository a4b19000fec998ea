#!/usr/bin/env bash
# The `make demo` story on embedded defaults, in well under a minute, on one machine:
#
#   sensor (ockam-edge node, device side of a serial link made of two ptys)
#     → serial → gateway (ockam-edge agent: serial listener, bridge with store-and-forward)
#     → TCP (through an "uplink" proxy the demo cuts and restores)
#     → cloud (ockam-edge agent: secure channel listener, ingest service)
#
# It shows the identities, an end-to-end secure channel from the sensor to the cloud that the gateway forwards but
# cannot read, sensor readings arriving at the cloud through the bridge, and the uplink being cut and restored:
# readings keep being accepted, wait in the gateway's queue, and all arrive once, in order, after recovery.
set -euo pipefail
BIN=${1:?usage: demo.sh path/to/ockam-edge}
HERE=$(cd "$(dirname "$0")" && pwd)
STATE=$(mktemp -d)
export OCKAM_EDGE_STATE_DIR=$STATE/state
pids=()
proxy=""
cleanup() {
  [ -n "$proxy" ] && kill "$proxy" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$STATE"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for_line() {  # file pattern what
  for _ in $(seq 1 200); do grep -q "$2" "$1" 2>/dev/null && return; sleep 0.05; done
  echo "$3 did not start:" >&2; cat "$STATE"/*.log >&2; exit 1
}
start_proxy() {
  python3 "$HERE/tcp-proxy.py" "$UPLINK" "$CLOUD_PORT" >"$STATE/proxy.out" 2>/dev/null &
  proxy=$!
  wait_for_line "$STATE/proxy.out" ready "uplink proxy"
}
identifier() { "$BIN" status --from "$1" --json | sed -n 's/.*"identifier": "\(I[0-9a-f]*\)".*/\1/p' | head -1; }
readings() { local n; n=$(grep -c '"bridge":"sensors"' "$STATE/ingest.jsonl" 2>/dev/null) || true; echo "${n:-0}"; }
queued() { "$BIN" status --from gateway --json | sed -n 's/.*"queued": \([0-9]*\).*/\1/p' | head -1; }

echo "== ockam-edge demo: sensor → serial → gateway → TCP → cloud =="
"$BIN" --version
mkdir -p "$STATE/state"
python3 "$HERE/nullmodem.py" "$STATE" >"$STATE/modem.out" 2>/dev/null &
pids+=($!)
wait_for_line "$STATE/modem.out" ready "null modem"
CLOUD_PORT=$(free_port)
UPLINK=$(free_port)

cat >"$STATE/cloud.yaml" <<EOF
node:
  name: cloud
  log_level: warning
vault:
  path: $STATE/cloud-vault
transports:
  tcp:
    listen: 127.0.0.1:$CLOUD_PORT
ingest:
  - address: ingest
    output: $STATE/ingest.jsonl
EOF
cat >"$STATE/gateway.yaml" <<EOF
node:
  name: gateway
  log_level: warning
vault:
  path: $STATE/gateway-vault
transports:
  tcp:
    listen: 127.0.0.1:0
  serial:
    - path: $STATE/ttyA
      mode: listen
      name: sensor1
bridges:
  - name: sensors
    to: /ip4/127.0.0.1/tcp/$UPLINK/secure/api/service/ingest
    ack_timeout: 1s
EOF
"$BIN" agent --config "$STATE/cloud.yaml" >"$STATE/cloud.out" 2>"$STATE/cloud.log" &
pids+=($!)
wait_for_line "$STATE/cloud.out" '^listening ' "cloud agent"
start_proxy
"$BIN" agent --config "$STATE/gateway.yaml" >"$STATE/gateway.out" 2>"$STATE/gateway.log" &
pids+=($!)
wait_for_line "$STATE/gateway.out" '^listening ' "gateway agent"
"$BIN" node run --name sensor --tcp-listen 127.0.0.1:0 --vault "$STATE/sensor-vault" --log-level warning \
  --serial "$STATE/ttyB,mode=connect,name=uplink" >"$STATE/sensor.out" 2>"$STATE/sensor.log" &
pids+=($!)
wait_for_line "$STATE/sensor.out" '^listening ' "sensor node"

echo
echo "identities (each in its own file vault):"
echo "  cloud    $(identifier cloud)"
echo "  gateway  $(identifier gateway)"
echo "  sensor   $(identifier sensor)"

echo
E2E="/serial/uplink/ip4/127.0.0.1/tcp/$UPLINK/secure/api/service/echo"
echo "end-to-end secure channel, sensor → cloud, through the gateway (which only forwards ciphertext):"
echo "  \$ ockam-edge message send --from sensor $E2E 'sealed from the sensor'"
REPLY=$("$BIN" message send --from sensor "$E2E" 'sealed from the sensor')
echo "  $REPLY"
[ "$REPLY" = "sealed from the sensor" ] || { echo "unexpected reply: $REPLY" >&2; exit 1; }

echo
echo "the sensor sends 40 readings, one every 100 ms, to the gateway's bridge (/serial/uplink/service/sensors);"
echo "the gateway delivers them to the cloud's ingest service through its own secure channel:"
"$BIN" message send --from sensor /serial/uplink/service/sensors 'reading {n}: temp=21.5C' --count 40 --interval 100ms \
  >"$STATE/sent.out" 2>"$STATE/sent.log" &
sender=$!
for _ in $(seq 1 100); do [ "$(readings)" -ge 10 ] && break; sleep 0.1; done
echo "  cloud has $(readings) readings; last: $(tail -1 "$STATE/ingest.jsonl")"
echo
echo "uplink cut (the proxy between gateway and cloud is killed):"
kill "$proxy"; wait "$proxy" 2>/dev/null || true; proxy=""
sleep 2.5
echo "  after 2.5 s: cloud has $(readings) readings; the gateway holds $(queued) in its queue"
start_proxy
echo "uplink restored."
wait "$sender"
for _ in $(seq 1 300); do [ "$(readings)" -ge 40 ] && break; sleep 0.1; done
echo "  cloud has $(readings) readings; the gateway holds $(queued)"
ORDERED=$(sed -n 's/.*"text":"reading \([0-9]*\):.*/\1/p' "$STATE/ingest.jsonl" | tr '\n' ' ')
EXPECTED=$(seq 0 39 | tr '\n' ' ')
[ "$ORDERED" = "$EXPECTED" ] || { echo "readings out of order or missing: $ORDERED" >&2; exit 1; }
echo "  all 40 readings arrived once, in order (sequence, device, gateway identity in each line):"
sed -n '1p;$p' "$STATE/ingest.jsonl" | sed 's/^/    /'
echo
echo "the gateway's bridge (ockam-edge status --from gateway --json):"
"$BIN" status --from gateway --json | python3 -c 'import json, sys
for b in json.load(sys.stdin)["bridges"]:
    print("  " + ", ".join(f"{k} {b[k]}" for k in ("name", "accepted", "delivered", "queued", "dropped_oldest", "delivery_failures")))'
echo
echo "demo OK"
