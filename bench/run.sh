#!/usr/bin/env bash
# `make bench` / `make bench QUICK=1`: installs what is missing, builds in release, runs every suite, writes
# bench/results/latest.{json,md} and throughput.svg. See bench/README.md.
#
#   QUICK=1        short rounds (CI proves the harness works; never judge speed from it); no static build, no profile
#   PROFILE=0|1    callgrind profile of suite 1 and the handshake operation counts (default: on in full runs)
#   STATIC=0|1     the --static-swift-stdlib build for the footprint suite (default: on in full runs)
#   BENCH_SUITES=… only these suites (e.g. 3,5); the others are kept from the previous latest.json
#                  (suite 7, BLE, boots the virtual rig's QEMU VM: hardware/virtual/run-in-vm.sh installs its packages
#                  and kernel when missing; if it cannot, the suite is reported as skipped with the reason)
#   SWIFT=…        the swift driver (default: swift)
#   BENCH_CONFIG=debug  use the debug build (CI's QUICK run proves the harness works without a second, ~8-minute
#                  release build; such numbers mean nothing). Default: release.
#   BENCH_RESULTS=dir   write results there instead of bench/results (QUICK runs default to bench/results/quick,
#                  so they never overwrite the committed full-run results)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SWIFT=${SWIFT:-swift}
QUICK=${QUICK:-}
[ "$QUICK" = 0 ] && QUICK=
if [ -n "$QUICK" ]; then DEFAULT_HEAVY=0; else DEFAULT_HEAVY=1; fi
PROFILE=${PROFILE:-$DEFAULT_HEAVY}
STATIC=${STATIC:-$DEFAULT_HEAVY}
CONFIG=${BENCH_CONFIG:-release}
if [ -n "$QUICK" ]; then RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/quick}; else RESULTS=${BENCH_RESULTS:-$ROOT/bench/results}; fi
export BENCH_RESULTS=$RESULTS
mkdir -p "$RESULTS"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Every process started below (and their children) dies with this script.
children() { jobs -p 2>/dev/null; }
cleanup() {
  local status=$?
  for pid in $(children); do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Debian packages: the peers and the chart (installed only when missing) -----------------------------------
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
need=""
for pkg in gnuplot-nox stunnel4 socat valgrind linux-perf openssl util-linux binutils; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need="$need $pkg"
done
# gnuplot may come from another flavour (gnuplot-x11, gnuplot-qt): any gnuplot will do.
if command -v gnuplot >/dev/null; then need=${need/gnuplot-nox/}; fi
if [ -n "${need// /}" ]; then
  log "installing:$need"
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null; }; then
    log "warning: could not install$need; the suites that need them are reported as skipped"
  fi
fi

# --- Builds (release) ---------------------------------------------------------------------------------------------
log "building ockam-edge and OckamEdgeBench ($CONFIG)"
"$SWIFT" build -c "$CONFIG" --product ockam-edge
"$SWIFT" build -c "$CONFIG" --product OckamEdgeBench
BIN=$("$SWIFT" build -c "$CONFIG" --show-bin-path)
export BENCH_BIN=$BIN/OckamEdgeBench AGENT_BIN=$BIN/ockam-edge SWIFT

if [ "$STATIC" = 1 ]; then
  log "building the static, stripped ockam-edge (scratch path .build-bench-static; several minutes the first time)"
  if "$SWIFT" build -c release --static-swift-stdlib -Xlinker -s --product ockam-edge \
       --scratch-path .build-bench-static >"$RESULTS/static-build.log" 2>&1; then
    export STATIC_BIN=$("$SWIFT" build -c release --static-swift-stdlib --scratch-path .build-bench-static --show-bin-path)/ockam-edge
  else
    export STATIC_SKIP_REASON="static build failed (see bench/results/static-build.log)"
    log "warning: $STATIC_SKIP_REASON"
  fi
else
  export STATIC_SKIP_REASON="not built in QUICK mode (STATIC=1 to force)"
fi

# --- Profile of suite 1 (callgrind; perf has no hardware counters on this kind of VM) -----------------------------
if [ "$PROFILE" = 1 ]; then
  rm -f "$RESULTS/profile.json"
  if command -v valgrind >/dev/null; then
    log "profiling suite 1 and counting handshake operations (callgrind)"
    if python3 bench/profile.py; then export PROFILE_DONE=1; else log "warning: profile failed"; fi
  else
    log "warning: valgrind missing: no profile"
  fi
fi

# --- Suites ---------------------------------------------------------------------------------------------------------
log "running the suites ($([ -n "$QUICK" ] && echo quick || echo full))"
status=0
QUICK=$QUICK python3 bench/harness.py &
wait $! || status=$?

# --- Chart ----------------------------------------------------------------------------------------------------------
if command -v gnuplot >/dev/null && [ -f "$RESULTS/throughput.gp" ]; then
  (cd "$RESULTS" && gnuplot throughput.gp) && log "chart: $RESULTS/throughput.svg"
else
  log "warning: no chart (gnuplot missing or the sweep did not run)"
fi
log "results: $RESULTS/latest.json, $RESULTS/latest.md"
[ "$status" = 0 ] || log "some suites failed (see latest.md)"
exit "$status"
