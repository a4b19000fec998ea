# ockam-edge: build, test and demo entry points. Every target installs missing Debian packages first.
SHELL := /bin/bash
SWIFT ?= swift
SYSTEM_PACKAGES := libsodium-dev libssl-dev libbluetooth-dev pkg-config python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build build-release test test-debug test-release demo fuzz fuzz-smoke clean help

all: build

help:
	@echo "make demo    install packages, build (release), run two nodes and route a message over TCP"
	@echo "make test    install packages, build and run all tests in debug and release"
	@echo "make build   debug build"

# Installs only what is missing, so repeated runs are fast and need no network.
deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build

build-release: deps
	$(SWIFT) build -c release --product ockam-edge

test: test-debug test-release

# (Not --no-parallel: with Swift 6.3.1 `swift test --no-parallel` hangs after the XCTest phase here.)
# scripts/test-watchdog.py: a hung run fails after TEST_TIME_LIMIT seconds and names the unfinished tests.
TEST_TIME_LIMIT ?= 900
test-debug: deps
	$(SWIFT) build --build-tests
	TEST_TIME_LIMIT=$(TEST_TIME_LIMIT) scripts/test-watchdog.py -- $(SWIFT) test --skip-build

# (Build included in the limit: `swift test` enables testable imports in release, `swift build --build-tests` would not.)
test-release: deps
	TEST_TIME_LIMIT=$$(( $(TEST_TIME_LIMIT) + 1200 )) scripts/test-watchdog.py -- $(SWIFT) test -c release

demo: build-release
	./scripts/demo.sh "$$($(SWIFT) build -c release --show-bin-path)/ockam-edge"

# libFuzzer: make fuzz TARGET=routing-message SECONDS=60   (targets: see Sources/EdgeFuzz/FuzzTargets.swift)
FUZZ_SCRATCH := .build-fuzz
TARGET ?= routing-message
SECONDS ?= 30
fuzz: deps
	$(SWIFT) build --scratch-path $(FUZZ_SCRATCH) --product OckamEdgeFuzz \
	  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -parse-as-library
	mkdir -p $(FUZZ_SCRATCH)/corpus/$(TARGET)
	SWIFT_BACKTRACE=enable=no OCKAM_EDGE_FUZZ_TARGET=$(TARGET) \
	  $(FUZZ_SCRATCH)/debug/OckamEdgeFuzz -max_total_time=$(SECONDS) -max_len=65536 -print_final_stats=1 \
	  -artifact_prefix=$(FUZZ_SCRATCH)/ $(FUZZ_SCRATCH)/corpus/$(TARGET) Tests/Fuzz/Corpus/$(TARGET)

# Every fuzz target for SECONDS each (CI's short run).
fuzz-smoke:
	@for t in $$(ls Tests/Fuzz/Corpus); do $(MAKE) --no-print-directory fuzz TARGET=$$t SECONDS=$(SECONDS) || exit 1; done

# Virtual BLE hardware-in-the-loop suite (QEMU/TCG + btvirt, hardware/virtual/). Fails loudly if QEMU cannot run
# here; not part of `make test`.
.PHONY: test-rig
test-rig: deps
	hardware/virtual/rig-suite.sh

clean:
	rm -rf .build
