# myruntime — build, test and read the workbook.
#
#   make demo            a first container in minutes, then an overlay and an image
#   make test            everything CI runs (as root): unit tests, every stage's
#                        suite against its stage, the later stages and myruntime,
#                        the book, fmt, clippy, lint
#   make test-stage STAGE=02 [BIN=/path/to/your/runtime]
#   make progress BIN=/path/to/your/runtime
#   make check           is this machine fit for each stage?
#   make book            build the book into book/build

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
# The stage binaries, in order. A stage's suite runs against its own binary,
# every later one, and myruntime.
ALL_STAGES := 01 02 03 04 05 06 07 08 09
STAGE_BINS := stage01-uts stage02-pid stage03-mount stage04-user stage05-cgroups stage06-overlay stage07-image stage08-lifecycle stage09-network
DEBUG_DIR  := target/debug
PROBE      := target/probe/x86_64-unknown-linux-gnu/release/probe
MDBOOK     ?= $(shell command -v mdbook 2>/dev/null || echo $${CARGO_HOME:-$(HOME)/.cargo}/bin/mdbook)
# A suite's failure message says what to fix; a backtrace would bury it.
export RUST_BACKTRACE = 0

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## install what the tests need (as root) and prepare the test rootfs
	scripts/setup-test-env.sh

.PHONY: check
check: ## show this machine's fitness for each stage
	scripts/check

.PHONY: build
build: ## release build; bin/myruntime and bin/stageNN-*
	$(CARGO) build --release --workspace --bins --exclude myruntime-suites --exclude probe --exclude diagrams
	@mkdir -p bin
	@for b in myruntime $(STAGE_BINS); do ln -sf ../target/release/$$b bin/$$b; done
	@echo "built: bin/myruntime $(addprefix bin/,$(STAGE_BINS))"

.PHONY: build-debug
build-debug: ## debug build of every binary (what the suites run by default)
	$(CARGO) build --workspace --bins --exclude myruntime-suites --exclude probe --exclude diagrams

.PHONY: probe
probe: ## the static probe the suites run inside containers
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release -p probe \
		--target x86_64-unknown-linux-gnu --target-dir target/probe
	@file $(PROBE) 2>/dev/null | grep -q 'static' || { echo "probe is not static: $(PROBE)"; exit 1; }

.PHONY: demo
demo: ## a first container in minutes, then an overlay and an image (root; installs what it needs)
	@scripts/demo

.PHONY: test
test: setup ## everything CI runs: unit, suites, book, fmt, clippy, lint
	$(MAKE) lint
	$(MAKE) test-unit
	$(MAKE) test-integration
	$(MAKE) test-can-fail
	@if [ "$$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ]; then \
		echo "this host is pure cgroup v2: the v2 VM job is not needed"; \
	else \
		$(MAKE) test-vm; \
	fi
	$(MAKE) test-repo
	$(MAKE) book
	@echo "make test: all passed"

.PHONY: test-unit
test-unit: build-debug ## unit tests and CLI snapshots (no root needed)
	$(CARGO) test --workspace --exclude myruntime-suites
	$(CARGO) test -p myruntime-suites --lib --bins --test cli

.PHONY: lint
lint: ## rustfmt, clippy, shellcheck
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	shellcheck -x scripts/*.sh scripts/check scripts/demo scripts/vm-test scripts/vm-guest scripts/bench scripts/bench-lifecycle scripts/bench-network .ci/run

.PHONY: test-integration
test-integration: build-debug probe ## every stage's suite against its stage, later stages and myruntime (root)
	@bins=($(STAGE_BINS)); i=0; \
	for stage in $(ALL_STAGES); do \
		for bin in "$${bins[@]:$$i}" myruntime; do \
			case $$bin in stage0[3-9]*|myruntime) needs_rootfs=1;; *) needs_rootfs=0;; esac; \
			echo "=== suite $$stage against $$bin"; \
			RUNTIME_BIN=$(CURDIR)/$(DEBUG_DIR)/$$bin RUNTIME_NEEDS_ROOTFS=$$needs_rootfs \
				$(CARGO) test -q -p myruntime-suites --test stage$$stage; \
		done; \
		i=$$((i+1)); \
	done
	@echo "=== suite final against myruntime"
	RUNTIME_BIN=$(CURDIR)/$(DEBUG_DIR)/myruntime RUNTIME_NEEDS_ROOTFS=1 \
		$(CARGO) test -q -p myruntime-suites --test final

.PHONY: test-final
test-final: build-debug probe ## the final suite (capabilities, no_new_privs, escapes) against myruntime or BIN (root)
	RUNTIME_BIN=$(or $(BIN),$(CURDIR)/$(DEBUG_DIR)/myruntime) RUNTIME_NEEDS_ROOTFS=1 \
		$(CARGO) test -q -p myruntime-suites --test final

.PHONY: test-vm
test-vm: build-debug probe ## the stage 05 suite and a myruntime smoke on a pure cgroup v2 kernel (qemu)
	scripts/vm-test

.PHONY: test-stage
test-stage: build-debug probe ## one suite: STAGE=NN, against BIN= (default: that stage's binary); NEEDS_ROOTFS=1 if BIN requires --rootfs
	@test -n "$(STAGE)" || { echo "say which stage: make test-stage STAGE=01 [BIN=/path/to/runtime]"; exit 2; }
	@test -f tests/suites/stage$(STAGE).rs || { echo "no suite for stage $(STAGE) yet; suites: $(ALL_STAGES)"; exit 2; }
	RUNTIME_BIN=$(if $(BIN),$(abspath $(BIN)),) RUNTIME_NEEDS_ROOTFS=$(NEEDS_ROOTFS) \
		$(CARGO) test -p myruntime-suites --test stage$(STAGE) -- $(TESTS)

.PHONY: progress
progress: build-debug probe ## which milestones BIN= passes (default: myruntime); STAGES=01-03, NEEDS_ROOTFS=1
	@$(CARGO) run -q -p myruntime-suites --bin progress -- \
		$(if $(STAGES),--stages $(STAGES)) $(if $(filter 1,$(NEEDS_ROOTFS)),--needs-rootfs) \
		$(abspath $(or $(BIN),$(DEBUG_DIR)/myruntime))

.PHONY: test-can-fail
test-can-fail: build-debug probe ## every milestone has a test that fails against the stage before it (root)
	$(CARGO) run -q -p myruntime-suites --bin progress -- --can-fail $(CURDIR)/$(DEBUG_DIR)

.PHONY: transcripts
transcripts: build-debug ## write the book's transcripts of the binaries (root)
	$(CARGO) run -q -p myruntime-suites --bin transcripts

.PHONY: test-repo
test-repo: build-debug probe ## the book's includes and transcripts, the docs, Dockerfile.dev and the Vagrantfile
	$(CARGO) test -p myruntime-suites --test repo

.PHONY: book
book: ## build the book into book/build (fails on a broken include or picture)
	@test -x "$(MDBOOK)" || { echo "mdbook is missing: run scripts/setup-test-env.sh"; exit 1; }
	@$(CARGO) run -q -p diagrams -- book/diagrams book/src/pictures book/src
	@out=$$($(MDBOOK) build book 2>&1) || { echo "$$out"; exit 1; }; \
	echo "$$out"; \
	if grep -E '(ERROR|WARN)' <<<"$$out"; then echo "the book built with errors or warnings"; exit 1; fi

.PHONY: bench
bench: build ## start latency of every stage and myruntime beside runc and crun (root); writes the book's chart
	scripts/setup-test-env.sh --rootfs-only
	scripts/bench

.PHONY: clean
clean: ## remove build output (not the test rootfs)
	$(CARGO) clean
	rm -rf bin book/build
