# decsweep: `make demo` and `make test` install what is missing, build, and run.
SHELL := /bin/bash
.DEFAULT_GOAL := build

PYTHON ?= python3
VENV := $(CURDIR)/.venv
VPY := $(VENV)/bin/python
TORCH_VERSION := 2.11.0
# Offline validators of deploy/ (crates/cli/tests/deploy.rs): the Kubernetes schemas and the
# Compose Specification's.
DEPLOY_CHECKERS := kubernetes-validate==1.37.0 check-jsonschema==0.39.0
# tools/convert_mosi.py --format csd reads CMU-MultimodalSDK computational sequences (HDF5).
CONVERTER_DEPS := h5py==3.16.0
# The stamp names every pinned package, so changing the set installs it into an existing .venv.
VENV_STAMP := $(VENV)/.decsweep-torch-$(TORCH_VERSION)-numpy-optuna-$(subst ==,-,$(subst $() ,-,$(DEPLOY_CHECKERS) $(CONVERTER_DEPS)))

# torch-sys builds against the PyTorch wheel inside .venv (headers and shared libraries).
# Recursive so it is read after the venv exists.
export LIBTORCH = $(shell cat $(VENV)/libtorch-path 2>/dev/null)
export DECSWEEP_PYTHON := $(VPY)
CARGO ?= cargo

FUZZ_CASES ?= 50

.PHONY: build install venv test browser-deps fuzz demo gpu-check gpu-bundle bench-train bench-pack bench-coordinator bench-coordinator-netem bench-search bench-prune bench-preempt bench-dashboard clean-venv

venv: $(VENV_STAMP)

$(VENV_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check torch==$(TORCH_VERSION) numpy optuna $(DEPLOY_CHECKERS) $(CONVERTER_DEPS)
	$(VPY) -c 'import os, torch; print(os.path.dirname(torch.__file__))' > $(VENV)/libtorch-path
	touch $@

build: $(VENV_STAMP)
	$(CARGO) build --release --workspace --bins

# `make install`: `decsweep` and `decsweep-worker` into $(BINDIR) (default ~/.local/bin), from
# the release build. The worker finds libtorch through its rpath, an absolute path into this
# checkout's .venv, so the installed copy works wherever it lies as long as .venv does (after
# moving the checkout, install again). The recipe runs the installed `decsweep-worker info` to
# prove it, and says how to put $(BINDIR) on PATH when it is not. crates/cli/tests/readme.rs runs
# it with `-o build INSTALL_FROM=target/debug`.
PREFIX ?= $(HOME)/.local
BINDIR ?= $(PREFIX)/bin
INSTALL_FROM ?= $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/release

install: build
	install -d "$(BINDIR)"
	install -m 755 "$(INSTALL_FROM)/decsweep" "$(INSTALL_FROM)/decsweep-worker" "$(BINDIR)/"
	"$(BINDIR)/decsweep-worker" info
	@case ":$$PATH:" in *":$(BINDIR):"*) ;; \
		*) echo "$(BINDIR) is not on PATH: run  export PATH=\"$(BINDIR):\$$PATH\"  (and add that line to ~/.bashrc or ~/.profile)";; \
	esac

# The dashboard's browser tests drive Debian's Chromium over WebDriver
# (crates/dashboard/tests/browser.rs; the tests install it too when run alone).
browser-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver; \
	fi

test: $(VENV_STAMP) browser-deps
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

# The fuzz tests of `make test`, FUZZ_CASES times as many cases each, from a new seed each run
# unless DECSWEEP_FUZZ_SEED is set (a failure prints the seed and case that replay it).
fuzz:
	export DECSWEEP_FUZZ_CASES=$(FUZZ_CASES) DECSWEEP_FUZZ_SEED=$${DECSWEEP_FUZZ_SEED:-$$(date +%s)}; \
	echo "fuzz: DECSWEEP_FUZZ_CASES=$$DECSWEEP_FUZZ_CASES DECSWEEP_FUZZ_SEED=$$DECSWEEP_FUZZ_SEED"; \
	$(CARGO) test -p decsweep-search --test fuzz_spec -- --nocapture && \
	$(CARGO) test -p decsweep-data --test fuzz_dataset -- --nocapture && \
	$(CARGO) test -p decsweep-server --test fuzz_http -- --nocapture && \
	$(CARGO) test -p decsweep-cli --test fuzz_specs -- --nocapture

demo: build
	./target/release/decsweep run sweeps/demo.toml --workers 2

# On a GPU machine where nothing can be fetched: every GPU figure into one file
# (target/gpu-check/gpu-check.txt). DECSWEEP_TORCH names the torch/ directory of PyTorch 2.11;
# prebuilt binaries in target/release are used when present (tools/gpu-check.sh says more).
gpu-check:
	DECSWEEP_TORCH=$${DECSWEEP_TORCH:-$(LIBTORCH)} tools/gpu-check.sh

# What a GPU machine needs for gpu-check when nothing is built there: stripped release binaries
# and the prebuilt parity test, in target/gpu-bundle (about 60 MiB). Copy or carry that folder
# with the checkout, then on the GPU machine:
#   GPU_CHECK_BIN=target/gpu-bundle DECSWEEP_TORCH=/path/to/site-packages/torch tools/gpu-check.sh
gpu-bundle: $(VENV_STAMP)
	$(CARGO) build --release -p decsweep-worker -p decsweep-cli --bins
	rm -rf target/gpu-bundle && mkdir -p target/gpu-bundle
	cp target/release/decsweep target/release/decsweep-worker target/gpu-bundle/
	exe=$$($(CARGO) test --release -p decsweep-model --test parity --no-run --message-format=json \
	  | $(VPY) -c 'import json, sys; print(next(m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable") and m["target"]["name"] == "parity"))') \
	  && cp "$$exe" target/gpu-bundle/parity-test
	strip target/gpu-bundle/*
	du -sh target/gpu-bundle

bench-train: build
	./target/release/decsweep-worker bench-train --python $(VPY)

# Packed training (crates/model/src/packed) against as many `train` processes: the tiny model
# (ff_dim at its default 256, then at 4·d_model), then the demo's, on CPU. On a GPU: decsweep-worker bench-pack --device cuda --model paper --ks 1,8,32 --packed-only.
bench-pack: $(VENV_STAMP)
	$(CARGO) build --release -p decsweep-worker --bin decsweep-worker
	./target/release/decsweep-worker bench-pack --model tiny --ks 1,2,4,8,16
	./target/release/decsweep-worker bench-pack --model tiny --set ff_dim=64 --ks 1,2,4,8,16
	./target/release/decsweep-worker bench-pack --model demo --ks 1,2,4,8,16 --epochs 1

bench-coordinator: build
	./target/release/decsweep-bench-coordinator --python $(VPY)

# Root: 256 simulated workers in two network namespaces whose links delay every packet 50 ms
# each way (decsweep-netem, through iptables' NFQUEUE), against the same drain on loopback and
# Optuna's gRPC storage proxy over the same links (grpcio, installed here only).
bench-coordinator-netem: build
	@command -v iptables >/dev/null || { apt-get install -y -q iptables || { apt-get update -q && apt-get install -y -q iptables; }; }
	$(VPY) -m pip install --quiet --disable-pip-version-check grpcio==1.85.3 protobuf==7.36.2
	./target/release/decsweep-bench-coordinator --trials 20000 --workers 256 --netem 50ms --python $(VPY)

bench-search: build
	./target/release/decsweep-bench-search --python $(VPY)

# About 15 minutes on 2 cores: four runs of a 30-configuration `dec` sweep.
bench-prune: build
	./target/release/decsweep-bench-prune --workers 2

# Several minutes on 2 cores: one `dec` sweep run twice while a random worker is stopped every
# 15 s, with and without resuming from checkpoints.
bench-preempt: build
	./target/release/decsweep-bench-preempt --workers 2

# The dashboard over 100,000 finished trials × 30 epochs: first byte, render in Chromium, update
# size, against optuna-dashboard (installed here, not by `make test`) over the same trials.
OPTUNA_DASHBOARD := optuna-dashboard==0.21.0
bench-dashboard: $(VENV_STAMP) browser-deps
	$(VPY) -m pip install --quiet --disable-pip-version-check $(OPTUNA_DASHBOARD)
	$(CARGO) run --release -p decsweep-dashboard --example bench_dashboard

clean-venv:
	rm -rf $(VENV)
