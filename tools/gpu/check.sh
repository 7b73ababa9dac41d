#!/usr/bin/env bash
# For a user with an NVIDIA GPU: builds (or loads) the GPU engine, checks it against torchvision,
# times EfficientNet-B1 training at 240x240 batch 64 and evaluation at batch 256 (the `full`
# preset's settings) and projects the `full` grid; prints one block to paste into an issue.
#   bash tools/gpu/check.sh            (after `make setup`; about 5-15 minutes, most of it the first build)
# What to expect, from an outside estimate (not measured here): PyTorch fp32 on a T4 trains B1 at
# ~140 img/s, ~10 h for the `full` grid. Nothing here has run on a GPU yet (docs/native.md: UNTESTED).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
tsx=(node --import tsx)
log=$(mktemp -d "${TMPDIR:-/tmp}/bias-gpu-check-XXXXXX")
trap 'rm -rf "$log"' EXIT
say() { echo "[gpu-check] $*"; }

if [[ ! -d node_modules/tsx ]]; then echo "[gpu-check] run 'make setup' first (npm ci and the Python venv)" >&2; exit 2; fi
gpu=$(nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader 2>/dev/null | head -n 1)
if ! nvidia-smi -L 2>/dev/null | grep -q '^GPU [0-9]'; then
  say "nvidia-smi lists no GPU (${gpu:-nvidia-smi not found}); what this machine has:"
  "${tsx[@]}" src/engine/doctor_main.ts
  exit 1
fi

say "1/4 the GPU engine (builds it on first use: several GB of wheels, a few minutes)"
if ! BIAS_INIT_BACKEND=cuda bash tools/native/ensure.sh; then
  say "no GPU engine; the diagnosis:"
  "${tsx[@]}" src/engine/doctor_main.ts
  exit 1
fi
source tools/native/engine-env.sh
export BIAS_INIT_BACKEND=cuda

say "2/4 parity with torchvision, float32 (NVIDIA_TF32_OVERRIDE=0 turns TF32 off in cuBLAS/cuDNN)"
NVIDIA_TF32_OVERRIDE=0 "${tsx[@]}" --test test/parity.test.ts > "$log/parity.txt" 2>&1
parity_rc=$?
parity_counts=$(grep -E '^# (tests|pass|fail|skipped) ' "$log/parity.txt" | sed 's/^# //' | paste -sd, -)
if [[ $parity_rc -eq 0 ]]; then parity="PASS ($parity_counts)"; else parity="FAIL ($parity_counts; first failure below)"; fi

say "3/4 timing: B1, 240x240, training batch 64, evaluation batch 256, then the full grid's projection"
"${tsx[@]}" src/cli.ts --preset full --dry-run > "$log/dry-run.txt" 2>&1
dry_rc=$?

say "4/4 the doctor's summary"
"${tsx[@]}" src/engine/doctor_main.ts > "$log/doctor.txt" 2>&1

echo
echo '```text'
echo "bias-init GPU check ($(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "gpu: $gpu"
echo "TF32: $( [[ ${NVIDIA_TF32_OVERRIDE:-} == 0 ]] && echo off || echo 'default (on for Ampere and newer) for the timing; off for the parity test')"
echo "parity with torchvision (float32): $parity"
[[ $parity_rc -eq 0 ]] || grep -m 5 -E 'not ok|AssertionError|differ' "$log/parity.txt"
echo "full preset dry run (exit $dry_rc):"
grep -E '^(backend|preset|units|per unit|measured|  \(|projection|error)' "$log/dry-run.txt" | sed 's/^/  /'
echo "doctor:"
sed 's/^/  /' "$log/doctor.txt"
echo "expected (outside estimate, not measured): PyTorch fp32 on a T4 ~140 img/s training, the full grid ~10 h (~5.4 h with AMP)"
echo '```'
[[ $parity_rc -eq 0 && $dry_rc -eq 0 ]]
