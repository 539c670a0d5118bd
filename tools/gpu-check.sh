#!/usr/bin/env bash
# make gpu-check: every GPU figure decsweep needs, from one script, on a machine where nothing
# can be fetched. Writes every figure, with the device's name, into one file ($GPU_CHECK_OUT,
# default target/gpu-check/gpu-check.txt) to paste into bench/RESULTS.md.
#
# Needs:
#   DECSWEEP_TORCH   the `torch` directory of a PyTorch 2.11 install (…/site-packages/torch);
#                    its lib/ goes on LD_LIBRARY_PATH, and it is LIBTORCH if a build is needed.
#   DECSWEEP_PYTHON  a python that imports that torch (parity test, bench-train); default: the
#                    python beside DECSWEEP_TORCH's site-packages, else python3.
# Optional:
#   GPU_CHECK_DEVICE cuda (default) or cpu: `make test` runs this script on CPU with
#                    GPU_CHECK_TINY=1 (crates/cli/tests/gpu_check.rs) so it cannot rot unseen.
#   GPU_CHECK_TINY=1 tiny models and few epochs everywhere (the CPU test).
#   GPU_CHECK_BIN    directory of prebuilt decsweep and decsweep-worker (default:
#                    target/release); built with `cargo build --release --offline` when absent.
#   GPU_CHECK_PARITY run (default) or skip: the PyTorch parity test on GPU_CHECK_DEVICE
#                    (DECSWEEP_PARITY_DEVICE), from GPU_CHECK_BIN/parity-test when present
#                    (`make gpu-bundle` puts it there), else through cargo (offline).
#
# Steps, each under its own time limit so the whole stays within 8 minutes on an H100:
#   1. decsweep-worker info
#   2. the PyTorch parity test (crates/model/tests/parity.rs; its stated tolerances)
#   3. decsweep-worker bench-train --device cuda
#   4. one paper-default `dec` trial, wall time per stage (metrics.json) and peak GPU memory
#   5. bench-pack (c): the paper's model, K = 1, 8, 32 packed
#   6. a small `decsweep run --pack 8`
# A step that fails is recorded as failed with its exit status and the script goes on; the exit
# status is the number of failed steps (0: all passed).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEVICE=${GPU_CHECK_DEVICE:-cuda}
TINY=${GPU_CHECK_TINY:-0}
OUT=${GPU_CHECK_OUT:-$ROOT/target/gpu-check/gpu-check.txt}
WORK=$(dirname "$OUT")/work
BIN=${GPU_CHECK_BIN:-$ROOT/target/release}
PARITY=${GPU_CHECK_PARITY:-run}

die() { echo "gpu-check: $*" >&2; exit 100; }

case "$DEVICE" in cuda | cuda:* | cpu) ;; *) die "GPU_CHECK_DEVICE must be cuda, cuda:K or cpu, got \`$DEVICE\`" ;; esac
case "$PARITY" in run | skip) ;; *) die "GPU_CHECK_PARITY must be run or skip, got \`$PARITY\`" ;; esac
[ -n "${DECSWEEP_TORCH:-}" ] || die "DECSWEEP_TORCH must name the torch directory of a PyTorch 2.11 install (…/site-packages/torch)"
[ -d "$DECSWEEP_TORCH/lib" ] || die "DECSWEEP_TORCH=$DECSWEEP_TORCH has no lib/ directory: is it PyTorch's torch/ directory?"
export LD_LIBRARY_PATH="$DECSWEEP_TORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LIBTORCH="$DECSWEEP_TORCH"
if [ -z "${DECSWEEP_PYTHON:-}" ]; then
    guess="$DECSWEEP_TORCH/../../../../bin/python"
    if [ -x "$guess" ]; then DECSWEEP_PYTHON=$(cd "$(dirname "$guess")" && pwd)/python; else DECSWEEP_PYTHON=python3; fi
fi
export DECSWEEP_PYTHON

mkdir -p "$WORK" || die "cannot create $WORK"
: > "$OUT" || die "cannot write $OUT"
failures=0

say() { echo "$*" | tee -a "$OUT"; }

# step NAME LIMIT_S COMMAND...: runs it, its output to the log and its time to the file.
step() {
    local name=$1 limit=$2
    shift 2
    local log="$WORK/$name.log" started ended status
    say ""
    say "## $name"
    started=$(date +%s.%N)
    timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
    status=$?
    ended=$(date +%s.%N)
    local wall
    wall=$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.1f", b - a }')
    if [ "$status" -eq 0 ]; then
        say "status: ok (${wall} s)"
    else
        failures=$((failures + 1))
        [ "$status" -eq 124 ] && say "status: FAILED: over its ${limit} s limit" || say "status: FAILED with exit status $status (${wall} s)"
        tail -n 20 "$log" | sed 's/^/    /' | tee -a "$OUT"
    fi
    return "$status"
}

if [ ! -x "$BIN/decsweep-worker" ] || [ ! -x "$BIN/decsweep" ]; then
    step build 300 cargo build --release --offline --manifest-path "$ROOT/Cargo.toml" -p decsweep-worker -p decsweep-cli --bins \
        || die "no binaries in $BIN and the offline build failed (see $WORK/build.log)"
fi
WORKER="$BIN/decsweep-worker"
DECSWEEP="$BIN/decsweep"

say "# decsweep gpu-check"
say "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "device: $DEVICE"
if [ "${DEVICE%%:*}" = cuda ] && command -v nvidia-smi > /dev/null; then
    say "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -n 1)"
fi
say "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') ($(nproc) cores)"
[ "$TINY" = 1 ] && say "settings: tiny (a check that the script runs, not figures)"

# 1. What the worker sees.
if step info 60 "$WORKER" info; then sed 's/^/    /' "$WORK/info.log" | tee -a "$OUT"; fi

# 2. The PyTorch parity test: our layers against tests/parity/reference.py on the same weights
#    and batch, within the tolerances the test states (crates/model/tests/parity.rs).
if [ "$PARITY" = run ]; then
    export DECSWEEP_PARITY_DEVICE="$DEVICE" DECSWEEP_PARITY_REFERENCE="$ROOT/tests/parity/reference.py"
    if [ -x "$BIN/parity-test" ]; then
        parity=("$BIN/parity-test" --test-threads 1 --nocapture)
    else
        parity=(cargo test --release --offline --manifest-path "$ROOT/Cargo.toml" -p decsweep-model --test parity -- --test-threads 1 --nocapture)
    fi
    say "tolerance: |ours - pytorch| <= 1e-4 * max(1, |pytorch|) element-wise, float32 on $DEVICE, no TF32"
    if step parity 240 "${parity[@]}"; then
        grep -E '^test |test result|tensors match' "$WORK/parity.log" | sed 's/^/    /' | tee -a "$OUT"
    fi
else
    say ""
    say "## parity"
    say "status: not run (GPU_CHECK_PARITY=skip)"
fi

# 3. Our training steps against PyTorch's on the same device.
if [ "$TINY" = 1 ]; then bench_args=(--steps 1 --rounds 1 --warmup 0); else bench_args=(); fi
if step bench-train 120 "$WORKER" bench-train --device "$DEVICE" --python "$DECSWEEP_PYTHON" "${bench_args[@]}"; then
    sed 's/^/    /' "$WORK/bench-train.log" | tee -a "$OUT"
fi

# 4. One paper-default `dec` trial on a MOSI-shaped synthetic dataset: wall time per stage and
#    the GPU's peak memory while it ran (nvidia-smi every 200 ms).
data="$WORK/mosi-synth.safetensors"
if [ "$TINY" = 1 ]; then
    "$DECSWEEP" data synth --out "$data" --seed 0 --n 120 > "$WORK/synth.log" 2>&1
    trial_sets=(--set epochs_ae=1 --set epochs_dec=1 --set epochs_ft=1 --set d_model=16 --set n_heads=2 --set ff_dim=32 --set latent_dim=8)
else
    "$DECSWEEP" data synth --out "$data" --seed 0 > "$WORK/synth.log" 2>&1
    trial_sets=()
fi
peak_file="$WORK/gpu-memory.csv"
: > "$peak_file"
sampler=""
if [ "${DEVICE%%:*}" = cuda ] && command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$peak_file" 2> /dev/null &
    sampler=$!
fi
rm -rf "$WORK/paper-trial"
step paper-trial 240 /usr/bin/env RUST_LOG=warn "$WORKER" train --data "$data" --pipeline dec --seed 0 --device "$DEVICE" \
    --out "$WORK/paper-trial" "${trial_sets[@]}"
[ -n "$sampler" ] && kill "$sampler" 2> /dev/null && wait "$sampler" 2> /dev/null
if [ -f "$WORK/paper-trial/metrics.json" ]; then
    "$DECSWEEP_PYTHON" - "$WORK/paper-trial/metrics.json" "$peak_file" << 'EOF' | tee -a "$OUT"
import json, sys
m = json.load(open(sys.argv[1]))
peak = [int(x) for x in open(sys.argv[2]).read().split() if x.strip().isdigit()]
print(f"    wall_s {m['wall_s']:.2f}  ae {m['time_ae_s']:.2f} s  dec {m['time_dec_s']:.2f} s  finetune {m['time_finetune_s']:.2f} s")
print(f"    accuracy {m['accuracy']:.4f}  f1_weighted {m['f1_weighted']:.4f}  params {m['param_count']}  device {m['device']}")
print(f"    peak GPU memory used {max(peak)} MiB (whole device, sampled every 200 ms)" if peak else "    peak GPU memory: not sampled (no nvidia-smi or not CUDA)")
EOF
fi

# 5. bench-pack (c): trials per second for packs of the paper's model.
if [ "$TINY" = 1 ]; then
    pack_args=(--model tiny --ks 1,2 --epochs 1 --rows 200 --packed-only --rounds 1)
else
    pack_args=(--model paper --ks 1,8,32 --packed-only --rounds 1)
fi
if step bench-pack 240 "$WORKER" bench-pack --device "$DEVICE" --work-dir "$WORK/bench-pack" "${pack_args[@]}"; then
    sed 's/^/    /' "$WORK/bench-pack.log" | tee -a "$OUT"
fi

# 6. A small sweep through the coordinator with --pack: every trial completed, packs recorded.
spec="$WORK/pack-run.toml"
cat > "$spec" << EOF
[study]
name = "gpu-check-pack"
dataset = { synthetic = { seed = 3, n = 240 } }
pipelines = ["baseline", "dec"]
seeds = [0, 1, 2, 3]

[fixed]
d_model = 16
n_heads = 2
n_layers = 1
ff_dim = 32
latent_dim = 8
batch_size = 64
epochs_ae = 2
epochs_dec = 2
epochs_ft = 3
EOF
rm -rf "$WORK/pack-run"
if step pack-run 120 /usr/bin/env DECSWEEP_HOME="$WORK/pack-home" DECSWEEP_WORKER="$WORKER" \
    "$DECSWEEP" run "$spec" --pack 8 --workers 1 --device "$DEVICE" --out "$WORK/pack-run"; then
    "$DECSWEEP_PYTHON" - "$WORK/pack-run/trials.csv" << 'EOF' | tee -a "$OUT"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
done = sum(r["status"] == "completed" for r in rows)
packs = sorted({r["pack"] for r in rows if r["pack"]})
print(f"    {done}/{len(rows)} trials completed; packs: {', '.join(packs) or 'none'}")
EOF
fi

say ""
say "failed steps: $failures"
echo "gpu-check: figures in $OUT" >&2
exit "$failures"
