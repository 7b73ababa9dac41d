#!/usr/bin/env bash
# This project's kernels as they were at a git revision, with every op renamed BiasInitX ->
# BaseBiasInitX, compiled into
# .native/tfjs-node/bias-ops/baseline_ops.node (AVX2 + FMA) and baseline_ops_avx512.node, as build.sh
# compiles the current ones: a baseline that loads beside the current kernels in
# one process, so that bench/kernels_ab.ts can alternate them step by step. On these guests whole
# runs in separate processes drifted by more than a kernel change moves a step (docs/performance.md,
# item 40), so separate builds in alternating processes could not tell them apart.
#   bash tools/native/build_baseline_ops.sh [REV]     (default HEAD; needs `make native` first)
# The headers come from the TensorFlow wheel that `make native` cached (.native/cache), unpacked to a
# temporary folder and removed afterwards (wheel_tool.py headers); compile_ops.sh compiles them as
# build.sh compiles the engine's. `make native` does not build or
# need this file; delete it with the folder or leave it: the engine never loads it.
set -euo pipefail
REV=${1:-HEAD}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NATIVE=${BIAS_INIT_NATIVE_DIR:-$REPO/.native}
PKG_DIR="$NATIVE/tfjs-node"
WHEEL=$(ls "$NATIVE"/cache/tensorflow_cpu-*.whl 2>/dev/null | head -n 1 || true)
if [[ ! -f $PKG_DIR/deps/lib/libtensorflow_framework.so.2 || -z $WHEEL ]]; then
  echo "build_baseline_ops.sh: no native engine or cached wheel under $NATIVE; run 'make native' first" >&2
  exit 2
fi
if ! git -C "$REPO" rev-parse --verify --quiet "$REV^{commit}" > /dev/null; then
  echo "build_baseline_ops.sh: '$REV' is not a git revision of $REPO; give a commit, tag or branch" >&2
  exit 2
fi
NODE_PREFIX=$(cd "$(dirname "$(readlink -f "$(command -v node)")")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
git -C "$REPO" archive "$REV" tools/native/ops | tar -x -C "$WORK"
# Op names appear only as string literals: REGISTER_OP, the kernel builders' Name() and addon.cc's list.
sed -i 's/"BiasInit/"BaseBiasInit/g' "$WORK"/tools/native/ops/*.cc
python3 "$REPO/tools/native/wheel_tool.py" headers "$WHEEL" "$WORK/include" > /dev/null
source "$REPO/tools/native/compile_ops.sh"
compile_kernels "$WORK/tools/native/ops" "$WORK/include" "$NODE_PREFIX/include/node" "$PKG_DIR/deps/lib" "$PKG_DIR/bias-ops/baseline_ops"
echo "build_baseline_ops.sh: the kernels of $(git -C "$REPO" rev-parse --short "$REV") as BaseBiasInit* ops: $PKG_DIR/bias-ops/baseline_ops{,_avx512}.node"
