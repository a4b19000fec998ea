# ockam-edge: build, test and demo entry points. Every target installs missing Debian packages first.
SHELL := /bin/bash
SWIFT ?= swift
SYSTEM_PACKAGES := libsodium-dev libssl-dev libbluetooth-dev pkg-config python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build build-release build-jetstream test test-debug test-release test-asan test-tsan test-jetstream test-fleet test-device demo fuzz fuzz-build fuzz-run fuzz-smoke reliability package package-check clean help

all: build

help:
	@echo "make demo          install packages, build (release), run sensor → gateway → cloud on embedded defaults"
	@echo "make test          install packages, build and run all tests in debug and release (test-debug, test-release),"
	@echo "                   then the fleet cluster scale test (test-fleet)"
	@echo "make test-asan     the unit suite under AddressSanitizer (a CI stage)"
	@echo "make test-tsan     the unit suite under ThreadSanitizer (a CI stage)"
	@echo "make build         debug build              make build-release   release build of ockam-edge"
	@echo "make build-jetstream  release ockam-edge with the JetStream ingest sink (trait JetStream; links libnats)"
	@echo "make test-jetstream   the JetStream sink, ingest and configuration tests with trait JetStream, against a"
	@echo "                   real nats-server (a CI stage; installs libnats-dev and nats-server)"
	@echo "make test-fleet    the fleet cluster scale test at CI size: 3 nats-servers, 2 ingest agents, simulated"
	@echo "                   gateways, leader/ingest kills and an uplink cut (debug build with trait JetStream)"
	@echo "make deps          install the Debian packages the build needs (only those missing)"
	@echo "make reliability   fault-injection and hostile-peer suite (CI sizes; RELIABILITY_FULL=1 for full sizes;"
	@echo "                   SCENARIOS='open_relay slow_reader' for some); fleet_cluster uses make build-jetstream"
	@echo "make test-rig      hardware-in-the-loop rig in QEMU: BLE (incl. an independent host attacking the gateway) and UART"
	@echo "                   (test-rig-ble, test-rig-uart; RIG_BIN_DIR=<bin dir> to use built binaries;"
	@echo "                   BLE_RIG_FUZZ_SECONDS=600 for a long BLE fuzz)"
	@echo "make test-device   the device kit: host tests (device/), then the emulated HIL test: Embedded Swift firmware"
	@echo "                   in QEMU mps2-an386 → serial → gateway agent (bridge) → TCP → cloud ingest, with a gateway"
	@echo "                   restart (docs/device-kit.md; DEVICE_READINGS=40; OCKAM_EDGE_BIN=<binary> skips the build)"
	@echo "make fuzz          one libFuzzer target: TARGET=routing-message SECONDS=60 (fuzz-build, fuzz-run)"
	@echo "make fuzz-smoke    every fuzz target for SECONDS (a CI stage)"
	@echo "make bench         the benchmarks (bench/README.md); QUICK=1 for the short run CI does"
	@echo "make package       the Debian package dist/ockam-edge_<version>-1_<arch>.deb for this machine's architecture"
	@echo "make package-check build it, lintian, then INSTALL it on this machine, check it, remove and purge it"
	@echo "                   (root and PACKAGE_CHECK_INSTALL=1 only; CI does it in its packaging stage)"
	@echo "make clean         remove every build folder (.build, the sanitizer, fuzz, JetStream and package builds, dist)"

# Installs those of the Debian packages $(1) that are missing, so repeated runs are fast and need no network.
install-missing = @missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

deps:
	$(call install-missing,$(SYSTEM_PACKAGES))

build: deps
	$(SWIFT) build

build-release: deps
	$(SWIFT) build -c release --product ockam-edge

# test-fleet last, and after the other two even under -j: it starts 3 nats-servers and 8 ockam-edge and is timing
# sensitive (delivery deadlines), so it must not share the 2 cores with a test build.
test: test-debug test-release
	$(MAKE) --no-print-directory test-fleet

# (Not --no-parallel: with Swift 6.3.1 `swift test --no-parallel` hangs after the XCTest phase here.)
# scripts/test-watchdog.py: a hung run fails after TEST_TIME_LIMIT seconds and names the unfinished tests.
# scripts/close-guard: the debug run also records every close() that fails with EBADF (a double close, which can close
# another test's or component's descriptor) and fails if there was one, printing where it happened.
TEST_TIME_LIMIT ?= 900
# Every ockam-edge a test starts exits when its parent (the test bundle) is gone, so a crashed or killed run leaves
# no nodes behind holding ptys, ports and vault locks (docs/configuration.md, OCKAM_EDGE_EXIT_WITH_PARENT).
TEST_ENV := OCKAM_EDGE_EXIT_WITH_PARENT=1
CLOSE_GUARD := .build/close-guard
CC_FOR_TOOLS := $(shell command -v cc || command -v clang)
test-debug: deps
	$(SWIFT) build --build-tests
	rm -rf $(CLOSE_GUARD) && mkdir -p $(CLOSE_GUARD)/reports
	$(CC_FOR_TOOLS) -shared -fPIC -O1 -o $(CLOSE_GUARD)/close-guard.so scripts/close-guard/close-guard.c -ldl
	CLOSE_GUARD_DIR=$(CURDIR)/$(CLOSE_GUARD)/reports LD_PRELOAD=$(CURDIR)/$(CLOSE_GUARD)/close-guard.so \
	  $(TEST_ENV) TEST_TIME_LIMIT=$(TEST_TIME_LIMIT) scripts/test-watchdog.py -- $(SWIFT) test --skip-build
	scripts/close-guard/report.sh $(CLOSE_GUARD)/reports

# (Build included in the limit: `swift test` enables testable imports in release, `swift build --build-tests` would not.)
test-release: deps
	$(TEST_ENV) TEST_TIME_LIMIT=$$(( $(TEST_TIME_LIMIT) + 1200 )) scripts/test-watchdog.py -- $(SWIFT) test -c release

# Trait JetStream (docs/fleet.md): its own scratch path, so switching the trait never rebuilds the default tree.
JETSTREAM_PACKAGES := libnats-dev nats-server
JETSTREAM_SCRATCH := .build-jetstream
build-jetstream: deps
	$(call install-missing,$(JETSTREAM_PACKAGES))
	$(SWIFT) build -c release --traits JetStream --scratch-path $(JETSTREAM_SCRATCH) --product ockam-edge

test-jetstream: deps
	$(call install-missing,$(JETSTREAM_PACKAGES))
	$(SWIFT) build --build-tests --traits JetStream --scratch-path $(JETSTREAM_SCRATCH)
	$(TEST_ENV) TEST_TIME_LIMIT=$(TEST_TIME_LIMIT) scripts/test-watchdog.py -- $(SWIFT) test --skip-build \
	  --traits JetStream --scratch-path $(JETSTREAM_SCRATCH) \
	  --filter 'EdgeJetStreamTests|EdgeBridgeTests|EdgeConfigTests|EdgeAgentTests.IngestSinkConfigTests|EdgeAgentTests.JetStreamAgentTests'

# The fleet cluster scale test (docs/fleet.md "The cluster scale test"): the reliability scenario fleet_cluster alone,
# at CI size, with the debug ockam-edge of trait JetStream (the tree test-jetstream builds, so after it this build is
# incremental). RELIABILITY_FLEET_REQUIRED=1: a missing binary or nats-server fails instead of skipping.
test-fleet: deps
	$(call install-missing,$(JETSTREAM_PACKAGES))
	$(SWIFT) build --traits JetStream --scratch-path $(JETSTREAM_SCRATCH) --product ockam-edge
	RELIABILITY_FULL= RELIABILITY_FLEET_REQUIRED=1 python3 scripts/reliability/run.py \
	  --bin $(CURDIR)/$(JETSTREAM_SCRATCH)/debug/ockam-edge --fleet-bin $(CURDIR)/$(JETSTREAM_SCRATCH)/debug/ockam-edge \
	  fleet_cluster

# AddressSanitizer over the unit suite (a CI stage): its own scratch path; the bundle runs directly so the
# ockam-edge children of the process tests are the ASan build too. Leak checking is off: LeakSanitizer reports Swift's
# global caches (Tests/Fuzz/lsan.supp).
ASAN_SCRATCH := .build-asan
test-asan: deps
	$(SWIFT) build --build-tests --scratch-path $(ASAN_SCRATCH) -Xswiftc -sanitize=address
	$(TEST_ENV) ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 TEST_TIME_LIMIT=$(TEST_TIME_LIMIT) scripts/test-watchdog.py -- \
	  $(ASAN_SCRATCH)/debug/ockam-edgePackageTests.xctest --testing-library swift-testing

# ThreadSanitizer over the unit suite (a CI stage), children included. Locks are visible to TSan through EdgeSync's
# annotations; Tests/tsan.supp lists the one report class from the uninstrumented concurrency runtime. A report in the
# test process fails the run (exit code 66); one in a child makes its exit status non-zero, which its test checks.
TSAN_SCRATCH := .build-tsan
# Two runs: the compute-heavy suites (vectors, property loops, crash children), then everything that waits on I/O.
# Under ThreadSanitizer both kinds together saturate two cores for minutes, and the I/O tests' guards (30 s) expire
# while they wait for a turn; apart, each kind has the machine to itself.
TSAN_COMPUTE := ^(EdgeVaultTests|EdgeQueueTests|EdgeCryptoTests|EdgeNoiseTests|EdgeWireTests|EdgeFuzzTests|EdgeIdentityTests|EdgeIdentityStoreTests|EdgeConfigTests|EdgeRoutingTests|EdgeCLITests|EdgeLogTests|EdgeControlTests|EdgeTransportSerialTests\.(ChecksumTests|FrameTests))\.
test-tsan: deps
	$(SWIFT) build --build-tests --scratch-path $(TSAN_SCRATCH) -Xswiftc -sanitize=thread
	$(TEST_ENV) TSAN_OPTIONS=suppressions=$(CURDIR)/Tests/tsan.supp TEST_TIME_LIMIT=$(TEST_TIME_LIMIT) scripts/test-watchdog.py -- \
	  $(TSAN_SCRATCH)/debug/ockam-edgePackageTests.xctest --testing-library swift-testing --filter '$(TSAN_COMPUTE)'
	$(TEST_ENV) TSAN_OPTIONS=suppressions=$(CURDIR)/Tests/tsan.supp TEST_TIME_LIMIT=$(TEST_TIME_LIMIT) scripts/test-watchdog.py -- \
	  $(TSAN_SCRATCH)/debug/ockam-edgePackageTests.xctest --testing-library swift-testing --skip '$(TSAN_COMPUTE)'

demo: build-release
	./scripts/demo.sh "$$($(SWIFT) build -c release --show-bin-path)/ockam-edge"

# libFuzzer: make fuzz TARGET=routing-message SECONDS=60   (targets and invariants: Tests/Fuzz/README.md)
# The -Xswiftc flags reach Swift modules only: C targets and the system libsodium/libcrypto stay uninstrumented.
# FuzzMain.swift defines the OckamEdgeFuzz_main symbol SwiftPM's link expects and hands it to libFuzzer.
# SWIFT_BACKTRACE=enable=no leaves crashes to libFuzzer, which saves the input under $(FUZZ_SCRATCH)/artifacts/<target>/.
# Tests/Fuzz/lsan.supp silences LeakSanitizer false positives on Swift globals (see the file).
# New corpus entries go to $(FUZZ_SCRATCH)/corpus/<target> (not committed); the log to $(FUZZ_SCRATCH)/logs/<target>.log.
FUZZ_SCRATCH := .build-fuzz
TARGET ?= routing-message
SECONDS ?= 30
FUZZ_FLAGS ?=
# release: 3-4x the executions of debug under ASan (bounds and overflow checks stay on); FUZZ_CONFIG=debug for
# unoptimised stack traces.
FUZZ_CONFIG ?= release
fuzz: fuzz-build fuzz-run

fuzz-build: deps
	$(SWIFT) build -c $(FUZZ_CONFIG) --scratch-path $(FUZZ_SCRATCH) --product OckamEdgeFuzz \
	  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -parse-as-library

# Runs an already built fuzzer (make fuzz = fuzz-build + fuzz-run).
fuzz-run:
	@test -d Tests/Fuzz/Corpus/$(TARGET) || { echo "no fuzz target '$(TARGET)' (see Tests/Fuzz/Corpus)"; exit 2; }
	mkdir -p $(FUZZ_SCRATCH)/corpus/$(TARGET) $(FUZZ_SCRATCH)/artifacts/$(TARGET) $(FUZZ_SCRATCH)/logs
	set -o pipefail; SWIFT_BACKTRACE=enable=no LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/Fuzz/lsan.supp:print_suppressions=0 \
	  OCKAM_EDGE_FUZZ_TARGET=$(TARGET) \
	  $(FUZZ_SCRATCH)/$(FUZZ_CONFIG)/OckamEdgeFuzz -max_total_time=$(SECONDS) -max_len=65536 -timeout=30 \
	  -print_final_stats=1 -artifact_prefix=$(FUZZ_SCRATCH)/artifacts/$(TARGET)/ $(FUZZ_FLAGS) \
	  $(FUZZ_SCRATCH)/corpus/$(TARGET) Tests/Fuzz/Corpus/$(TARGET) 2>&1 | tee $(FUZZ_SCRATCH)/logs/$(TARGET).log

# Every fuzz target for SECONDS each (CI: make fuzz-smoke SECONDS=30). Runs all targets even after a crash, then
# prints executions and final coverage per target and fails if any target crashed.
fuzz-smoke: fuzz-build
	@failed=""; \
	for t in $$(ls Tests/Fuzz/Corpus); do \
	  echo "== fuzz $$t ($(SECONDS) s)"; \
	  mkdir -p $(FUZZ_SCRATCH)/logs; rm -f $(FUZZ_SCRATCH)/logs/$$t.log; \
	  $(MAKE) --no-print-directory fuzz-run TARGET=$$t SECONDS=$(SECONDS) > $(FUZZ_SCRATCH)/logs/$$t.make.log 2>&1 \
	    || failed="$$failed $$t"; \
	  grep -E '(error:|Build complete|INFO: Seed|^Done [0-9]|^stat::number_of_executed_units|^==[0-9]+==|^SUMMARY|Test unit written|Fatal error|invariant violated|deadly signal)' \
	    $(FUZZ_SCRATCH)/logs/$$t.make.log; \
	done; \
	echo; printf '%-24s %12s %8s %8s  %s\n' target executions cov ft result; \
	for t in $$(ls Tests/Fuzz/Corpus); do \
	  log=$(FUZZ_SCRATCH)/logs/$$t.log; \
	  execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log 2>/dev/null); \
	  last=$$(grep -E '^#[0-9]+.* cov: ' $$log 2>/dev/null | tail -1); \
	  cov=$$(echo "$$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p'); \
	  ft=$$(echo "$$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p'); \
	  case " $$failed " in *" $$t "*) result=FAILED;; *) result=ok;; esac; \
	  grep -q 'libFuzzer: run interrupted' $$log 2>/dev/null && result="$$result (interrupted)"; \
	  printf '%-24s %12s %8s %8s  %s\n' $$t "$${execs:--}" "$${cov:--}" "$${ft:--}" $$result; \
	done; \
	test -z "$$failed" || { echo "fuzz targets failed:$$failed (inputs: $(FUZZ_SCRATCH)/artifacts/<target>/)"; exit 1; }

# Virtual BLE hardware-in-the-loop suite (QEMU/TCG + btvirt, hardware/virtual/). Fails loudly if QEMU cannot run
# here; not part of `make test`.
# The virtual hardware rig (hardware/README.md), QEMU/TCG: the BLE suite (btvirt L2CAP) and the 16550 UART suite.
# `make test-rig` runs both (the second runs even if the first fails) and fails if either does.
# RIG_BIN_DIR=<swift bin dir> uses the ble-rig-driver and ockam-edge already built there (CI: its release build);
# without it each suite builds what it needs in release.
RIG_BIN_DIR ?=
RIG_ENV = $(if $(RIG_BIN_DIR),BLE_RIG_DRIVER=$(RIG_BIN_DIR)/ble-rig-driver BLE_RIG_OCKAM_EDGE=$(RIG_BIN_DIR)/ockam-edge UART_RIG_OCKAM_EDGE=$(RIG_BIN_DIR)/ockam-edge)
.PHONY: test-rig test-rig-ble test-rig-uart
test-rig: deps
	@status=0; \
	$(RIG_ENV) hardware/virtual/rig-suite.sh || status=1; \
	$(RIG_ENV) hardware/virtual/uart-suite.sh || status=1; \
	exit $$status

test-rig-ble: deps
	$(RIG_ENV) hardware/virtual/rig-suite.sh

test-rig-uart: deps
	$(RIG_ENV) hardware/virtual/uart-suite.sh

# The device kit (docs/device-kit.md): its host tests, then the firmware in QEMU against a real gateway and cloud.
# Needs the Swift toolchain's embedded standard library for armv7em-none-none-eabi and qemu-system-arm.
DEVICE_READINGS ?= 40
OCKAM_EDGE_BIN ?=
test-device: deps
	@dpkg-query -W -f='$${Status}' qemu-system-arm 2>/dev/null | grep -q "install ok installed" || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends qemu-system-arm; }
	cd device && $(SWIFT) build --build-tests && $(SWIFT) test --skip-build
	@if [ -z "$(OCKAM_EDGE_BIN)" ]; then $(SWIFT) build -c release --product ockam-edge; fi
	python3 device/hil/run.py --readings $(DEVICE_READINGS) \
	  --bin "$(if $(OCKAM_EDGE_BIN),$(OCKAM_EDGE_BIN),$$($(SWIFT) build -c release --show-bin-path)/ockam-edge)"

clean:
	rm -rf .build device/.build $(ASAN_SCRATCH) $(TSAN_SCRATCH) $(FUZZ_SCRATCH) $(JETSTREAM_SCRATCH) .build-package dist

# The Debian package (README, "Install on a gateway"; packaging/build-deb.sh): release build with the Swift standard
# library linked statically, man pages and completions generated by the binary, dpkg-deb. package-check installs it
# on this machine (packaging/check-deb.sh says what it checks).
PACKAGE_TOOLS := dpkg-dev binutils lintian groff-base
package: deps
	$(call install-missing,$(PACKAGE_TOOLS))
	SWIFT=$(SWIFT) packaging/build-deb.sh

package-check: package
	packaging/check-deb.sh

# Benchmarks (bench/README.md): `make bench` runs every suite in full; `make bench QUICK=1` is the short version CI
# runs to prove the harness works (never to judge speed). Results: bench/results/latest.{json,md}, throughput.svg.
.PHONY: bench
bench: deps
	QUICK=$(QUICK) SWIFT=$(SWIFT) ./bench/run.sh

# Fault-injection and soak suite (scripts/reliability/run.py, results in docs/security.md): the release
# binary as separate processes — serial unplug/replug and line noise, TCP uplink restarts, stalled and flooded
# handshakes, slowloris, kill -9 during vault writes, a secure-channel soak. CI sizes take about 5 minutes;
# RELIABILITY_FULL=1 runs the full sizes (about 20 minutes). SCENARIOS="soak vault_kill9" runs only those.
# fleet_cluster (a 3-node nats-server cluster, ingest agents, gateways) runs with the release build of trait JetStream
# from build-jetstream, not the debug one test-fleet uses: like every other scenario here it exercises the binary that
# is deployed (an ingest node runs `make build-jetstream`'s output; optimizer bugs can break only the release build),
# and only a release build's throughput and latency say something about a deployment (the figures in docs/fleet.md
# are the debug build's). It is built only when fleet_cluster is among the scenarios run.
RELIABILITY_FULL ?=
SCENARIOS ?=
RELIABILITY_FLEET := $(if $(SCENARIOS),$(filter fleet_cluster,$(SCENARIOS)),fleet_cluster)
reliability: build-release $(if $(RELIABILITY_FLEET),build-jetstream)
	RELIABILITY_FULL=$(RELIABILITY_FULL) $(if $(RELIABILITY_FLEET),RELIABILITY_FLEET_REQUIRED=1) \
	  python3 scripts/reliability/run.py --bin "$$($(SWIFT) build -c release --show-bin-path)/ockam-edge" \
	  --fleet-bin $(CURDIR)/$(JETSTREAM_SCRATCH)/release/ockam-edge $(SCENARIOS)
