#!/usr/bin/env bash
# The `make demo` story on embedded defaults: two ockam-edge nodes on loopback; a client routes a message
# through the gateway (which only forwards) to the cloud node's `uppercase` service over Ockam TCP, first in the
# clear and then inside an end-to-end secure channel the gateway cannot read.
set -euo pipefail
BIN=${1:?usage: demo.sh path/to/ockam-edge}
STATE=$(mktemp -d)
export OCKAM_EDGE_STATE_DIR=$STATE
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$STATE"
}
trap cleanup EXIT

start_node() {  # name -> prints host:port
  local name=$1 out="$STATE/$1.out"
  "$BIN" node run --name "$name" --tcp-listen 127.0.0.1:0 --vault "$STATE/vault-$name" --log-level info \
    >"$out" 2>"$STATE/$name.log" &
  pids+=($!)
  for _ in $(seq 1 100); do
    if grep -q '^listening ' "$out" 2>/dev/null; then sed -n 's/^listening //p' "$out"; return; fi
    sleep 0.1
  done
  echo "node $name did not start:" >&2; cat "$STATE/$name.log" >&2; exit 1
}

echo "== ockam-edge demo =="
"$BIN" --version
CLOUD=$(start_node cloud)
GATEWAY=$(start_node gateway)
echo "cloud node   listening on $CLOUD (services: echo, uppercase)"
echo "gateway node listening on $GATEWAY (forwards to remote hops)"

ROUTE="/ip4/${GATEWAY%:*}/tcp/${GATEWAY##*:}/ip4/${CLOUD%:*}/tcp/${CLOUD##*:}/service/uppercase"
echo
echo "\$ ockam-edge message send $ROUTE 'hello from the edge'"
REPLY=$("$BIN" message send "$ROUTE" 'hello from the edge')
echo "$REPLY"
[ "$REPLY" = "HELLO FROM THE EDGE" ] || { echo "unexpected reply: $REPLY" >&2; exit 1; }

echo
SECURE="$ROUTE"
SECURE="${SECURE%/service/uppercase}/secure/api/service/uppercase"
echo "\$ ockam-edge message send $SECURE 'sealed end to end'"
REPLY=$("$BIN" message send "$SECURE" 'sealed end to end')
echo "$REPLY"
[ "$REPLY" = "SEALED END TO END" ] || { echo "unexpected reply: $REPLY" >&2; exit 1; }

echo
echo "\$ ockam-edge secure-channel create --from gateway --to /node/cloud"
CHANNEL=$("$BIN" secure-channel create --from gateway --to /node/cloud)
echo "$CHANNEL"
echo "\$ ockam-edge message send --from gateway $CHANNEL/service/echo 'through a channel the gateway owns'"
"$BIN" message send --from gateway "$CHANNEL/service/echo" 'through a channel the gateway owns'
echo
echo "\$ ockam-edge status --from cloud   (identities and channels, abridged)"
"$BIN" status --from cloud | grep -E '"(name|identifier|peer|role)"' | sed 's/^/  /'
echo
echo "gateway log:"
sed 's/^/  /' "$STATE/gateway.log"
echo
echo "demo OK"
