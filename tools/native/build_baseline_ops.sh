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
# temporary folder and removed afterwards; the flags are build.sh's. `make native` does not build or
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
python3 - "$WHEEL" "$WORK/include" <<'EOF'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
prefix = "tensorflow/include/"
with zipfile.ZipFile(wheel) as zf:
    for info in zf.infolist():
        if info.filename.startswith(prefix) and not info.filename.endswith("/"):
            target = os.path.join(dest, info.filename[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                out.write(src.read())
EOF
compile() {
  g++ -std=c++17 -O3 "$@" -fPIC -shared -w -D_GLIBCXX_USE_CXX11_ABI=1 -DEIGEN_MAX_ALIGN_BYTES=64 \
    -I"$WORK/include" -I"$NODE_PREFIX/include/node" "$WORK"/tools/native/ops/*.cc \
    -L"$PKG_DIR/deps/lib" -l:libtensorflow_framework.so.2 -Wl,-rpath,'$ORIGIN/../deps/lib'
}
compile -mavx2 -mfma -mavx512f -o "$PKG_DIR/bias-ops/baseline_ops_avx512.node" & wide=$!
compile -mavx2 -mfma -o "$PKG_DIR/bias-ops/baseline_ops.node"
wait "$wide"
echo "build_baseline_ops.sh: the kernels of $(git -C "$REPO" rev-parse --short "$REV") as BaseBiasInit* ops: $PKG_DIR/bias-ops/baseline_ops{,_avx512}.node"
