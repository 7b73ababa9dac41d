#!/usr/bin/env bash
# Build TF.js's native backend (@tensorflow/tfjs-node 4.22.0) from source against the
# TensorFlow C library shipped inside the tensorflow-cpu 2.21.0 Python wheel, because the
# package's own install script downloads libtensorflow from a Google host this network
# cannot reach. See docs/native.md.
#
#   bash tools/native/build.sh            CPU: .native/tfjs-node      (+ .native/READY)
#   bash tools/native/build.sh --gpu      GPU: .native/tfjs-node-gpu  (+ .native/READY-gpu)  UNTESTED
#   bash tools/native/build.sh --force    rebuild even if READY matches
#
# Idempotent: with a matching READY file it exits at once; downloads are cached in .native/cache/.
# BIAS_INIT_NATIVE_DIR moves .native elsewhere. A failure leaves .native/FAILED-<variant> (the step
# and what to do), which tools/native/ensure.sh (the `make run` etc. prerequisite) reports.
set -euo pipefail

TF_VERSION=2.21.0
TFJS_VERSION=4.22.0
# The patches patch_binding.py applies; an engine built with other patches (or none) is rebuilt.
BINDING_PATCHES=string-list-attrs,type-list-attrs,signal-guard
# This project's own kernels (tools/native/ops/, loaded by src/engine/custom_ops.ts), by the version
# addon.cc exports (kVersion); an engine built with another version (or none) is rebuilt. CPU
# variant on x86-64 only, else "none".
CUSTOM_OPS=kernels-$(sed -n 's/^constexpr uint32_t kVersion = \([0-9][0-9]*\);.*/\1/p' "$(dirname "${BASH_SOURCE[0]}")/ops/addon.cc")
[[ $CUSTOM_OPS != kernels- ]] || { echo "build.sh: no 'constexpr uint32_t kVersion = N;' line in tools/native/ops/addon.cc" >&2; exit 1; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$REPO/tools/native"
NATIVE=$(mkdir -p "${BIAS_INIT_NATIVE_DIR:-$REPO/.native}" && cd "${BIAS_INIT_NATIVE_DIR:-$REPO/.native}" && pwd)
CACHE="$NATIVE/cache"

VARIANT=cpu
FORCE=0
for arg in "$@"; do
  case "$arg" in
    --gpu) VARIANT=gpu ;;
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument '$arg' (use --gpu, --force, --help)" >&2; exit 2 ;;
  esac
done

[[ $VARIANT == cpu && $(uname -m) == x86_64 ]] || CUSTOM_OPS=none
if [[ $VARIANT == cpu ]]; then
  WHEEL_PKG=tensorflow-cpu
  NPM_PKG=@tensorflow/tfjs-node
  PKG_DIR="$NATIVE/tfjs-node"
  READY="$NATIVE/READY"
  FAILED="$NATIVE/FAILED-cpu"
  MAKE_TARGET="make native"
  TAG=""
else
  WHEEL_PKG=tensorflow
  NPM_PKG=@tensorflow/tfjs-node-gpu
  PKG_DIR="$NATIVE/tfjs-node-gpu"
  READY="$NATIVE/READY-gpu"
  FAILED="$NATIVE/FAILED-gpu"
  MAKE_TARGET="make native-gpu"
  TAG=" [GPU variant: UNTESTED, no GPU and no 'tensorflow' wheel where it was written]"
fi
WHEEL_STEM=${WHEEL_PKG//-/_}-$TF_VERSION

# ---------------------------------------------------------------- reporting
STEP="0/5 (checking prerequisites)"
HINT="install the missing tool named above"
START=$SECONDS
say() { echo "[native] $*"; }
TIMES=""
STEP_T0=$SECONDS
step_done() {
  local n=${STEP%% *}
  TIMES+="$n $((SECONDS - STEP_T0))s, "
  echo "[native $n] done in $((SECONDS - STEP_T0)) s"
}
step() {
  [[ $STEP == 0/5* ]] || step_done
  STEP="$1 $2"; HINT="$3"; STEP_T0=$SECONDS
  echo "[native $1] $2...$TAG"
}
on_error() {
  local rc=$?
  trap - ERR
  echo >&2
  echo "[native] FAILED at step $STEP (exit $rc)." >&2
  echo "[native] try: $HINT" >&2
  echo "[native] then run '$MAKE_TARGET' again (ARGS=--force starts the package folder afresh); 'make doctor' explains this machine." >&2
  # Line 1: the step, line 2: what to do. tools/native/ensure.sh reads it for its one loud message.
  mkdir -p "$NATIVE" && printf '%s\n%s\n' "$STEP" "$HINT" > "$FAILED" || true
  exit "$rc"
}
trap on_error ERR

# ---------------------------------------------------------------- prerequisites
if [[ -x "$REPO/.venv/bin/python" ]]; then PY="$REPO/.venv/bin/python"; else PY=python3; fi
for tool in node npm "$PY" g++ make; do
  command -v "$tool" >/dev/null || { HINT="install '$tool' (Debian: apt-get install -y build-essential nodejs npm python3)"; false; }
done
# Node's own headers: with them node-gyp does not try to download them (it cannot here).
NODE_PREFIX=$(cd "$(dirname "$(readlink -f "$(command -v node)")")/.." && pwd)
if [[ ! -f "$NODE_PREFIX/include/node/node_api.h" ]]; then
  HINT="Node's headers are missing from $NODE_PREFIX/include/node (Debian: apt-get install -y libnode-dev, or use a Node.js tarball install)"
  false
fi
NPM_BIN_DIR=$(dirname "$(readlink -f "$(command -v npm)")")
NODE_GYP_JS=$(readlink -f "$NPM_BIN_DIR/../node_modules/node-gyp/bin/node-gyp.js" 2>/dev/null || true)
REPO_TFJS="$REPO/node_modules/@tensorflow/tfjs/package.json"
if [[ ! -f $REPO_TFJS ]] || [[ $(node -p "require('$REPO_TFJS').version") != "$TFJS_VERSION" ]]; then
  HINT="run 'npm install' in $REPO first: the native package reuses the repo's @tensorflow/tfjs $TFJS_VERSION"
  false
fi

# ---------------------------------------------------------------- already built?
ready_matches() {
  [[ -f $READY ]] || return 1
  node -e '
    const [ready, variant, pkg, tfjs, wheel, patches, ops] = process.argv.slice(1);
    const r = JSON.parse(require("fs").readFileSync(ready, "utf8"));
    const ok = r.variant === variant && r.package === pkg && r.tfjsNodeVersion === tfjs &&
      r.wheel === wheel && r.bindingPatches === patches && (r.customOps ?? "none") === ops &&
      require("fs").existsSync(r.bindingPath);
    process.exit(ok ? 0 : 1);' "$READY" "$VARIANT" "$NPM_PKG" "$TFJS_VERSION" "$WHEEL_STEM" "$BINDING_PATCHES" "$CUSTOM_OPS" 2>/dev/null
}
if [[ $FORCE == 0 ]] && ready_matches; then
  say "native backend already built ($NPM_PKG $TFJS_VERSION on $WHEEL_PKG $TF_VERSION): $PKG_DIR; --force rebuilds"
  exit 0
fi
rm -f "$READY"
mkdir -p "$CACHE"

# ---------------------------------------------------------------- 1. wheel
step 1/5 "downloading $WHEEL_PKG $TF_VERSION wheel from the package index" \
  "check that '$PY -m pip download --no-deps $WHEEL_PKG==$TF_VERSION' works (pip's index is configured in pip.conf; this needs the local index, not the internet)"
WHEEL=$(ls "$CACHE"/"$WHEEL_STEM"-*.whl 2>/dev/null | head -n 1 || true)
if [[ -n $WHEEL ]]; then
  say "  cached: $(basename "$WHEEL")"
else
  PIP_RETRIES=0 PIP_TIMEOUT=5 "$PY" -m pip download -q --no-deps --progress-bar off \
    "$WHEEL_PKG==$TF_VERSION" -d "$CACHE" 2>&1 | grep -v "is ignored: it is neither" || true
  WHEEL=$(ls "$CACHE"/"$WHEEL_STEM"-*.whl 2>/dev/null | head -n 1 || true)
  [[ -n $WHEEL ]] || false
fi

if [[ $VARIANT == gpu ]]; then
  # The wheel names its CUDA 12 runtime as the `and-cuda` extra, with lower bounds only; we pin
  # each nvidia-*-cu12 wheel to the CUDA 12.5.1 / cuDNN 9.3.0 that TF 2.21 was built with
  # (tools/native/cuda-pins.txt; sources in docs/native.md), checked against the extra's ranges.
  HINT="the index must also hold the pinned nvidia-*-cu12 wheels (tools/native/cuda-pins.txt); check with '$PY -m pip download --no-deps <name>==<version>'"
  CUDA_REQS_TEXT=$("$PY" "$HERE/wheel_tool.py" cuda-pins "$WHEEL" "$HERE/cuda-pins.txt")
  mapfile -t CUDA_REQS <<<"$CUDA_REQS_TEXT"
  say "  CUDA wheels (pinned): ${CUDA_REQS[*]}"
  mkdir -p "$CACHE/cuda"
  for spec in "${CUDA_REQS[@]}"; do
    name=${spec%%[<>=!~]*}
    version=${spec##*==}
    if ls "$CACHE/cuda/${name//-/_}-$version"-*.whl >/dev/null 2>&1; then continue; fi
    PIP_RETRIES=0 PIP_TIMEOUT=5 "$PY" -m pip download -q --no-deps --progress-bar off "$spec" -d "$CACHE/cuda" 2>&1 \
      | grep -v "is ignored: it is neither" || true
    ls "$CACHE/cuda/${name//-/_}-$version"-*.whl >/dev/null 2>&1 || { HINT="'$spec' is not on the package index (pip download --no-deps '$spec')"; false; }
  done
fi

# ---------------------------------------------------------------- 2. npm package
step 2/5 "fetching $NPM_PKG@$TFJS_VERSION without its install script" \
  "check the npm registry: 'npm pack $NPM_PKG@$TFJS_VERSION' and 'npm install --omit=dev --ignore-scripts' in $PKG_DIR"
TGZ_NAME=$(echo "${NPM_PKG#@}" | tr / -)-$TFJS_VERSION.tgz
if [[ ! -f $CACHE/$TGZ_NAME ]]; then
  (cd "$CACHE" && npm pack --silent "$NPM_PKG@$TFJS_VERSION" >/dev/null)
fi
rm -rf "$PKG_DIR" "$PKG_DIR.tmp"
mkdir -p "$PKG_DIR.tmp"
tar -xzf "$CACHE/$TGZ_NAME" -C "$PKG_DIR.tmp"
mv "$PKG_DIR.tmp/package" "$PKG_DIR"
rmdir "$PKG_DIR.tmp"
(cd "$PKG_DIR" && npm install --omit=dev --ignore-scripts --no-package-lock --no-audit --no-fund --loglevel=error >/dev/null)
# One tfjs-core in the process: @tensorflow/* must resolve to <repo>/node_modules (Node walks up).
rm -rf "$PKG_DIR/node_modules/@tensorflow"
find "$PKG_DIR/node_modules/.bin" -xtype l -delete 2>/dev/null || true
for dep in @mapbox/node-pre-gyp google-protobuf; do
  [[ -d $PKG_DIR/node_modules/$dep ]] || { HINT="npm did not install $dep into $PKG_DIR/node_modules"; false; }
done

# ---------------------------------------------------------------- 3. TF C library
step 3/5 "unpacking the TensorFlow C library into $PKG_DIR/deps" \
  "the wheel may be truncated: delete $WHEEL and run again"
"$PY" "$HERE/wheel_tool.py" tf-lib "$WHEEL" "$PKG_DIR/deps"
# The binding links -ltensorflow -ltensorflow_framework; the wheel's libtensorflow_cc.so.2
# exports the C and eager C APIs that libtensorflow.so.2 would.
(cd "$PKG_DIR/deps/lib" &&
  ln -sf libtensorflow_cc.so.2 libtensorflow.so.2 &&
  ln -sf libtensorflow.so.2 libtensorflow.so &&
  ln -sf libtensorflow_framework.so.2 libtensorflow_framework.so)
if [[ $VARIANT == gpu ]]; then
  # The wheel's libraries look for CUDA through rpath entries $ORIGIN/../nvidia/<pkg>/lib,
  # which from deps/lib is deps/nvidia/<pkg>/lib: the same layout as in site-packages.
  for spec in "${CUDA_REQS[@]}"; do
    name=${spec%%[<>=!~]*}
    "$PY" "$HERE/wheel_tool.py" nvidia-libs "$(ls "$CACHE/cuda/${name//-/_}-${spec##*==}"-*.whl | head -n 1)" "$PKG_DIR/deps/nvidia"
  done
  # readelf -d: do the libraries that dlopen CUDA carry those run paths? (TF 2.16.1 shipped without.)
  HINT="read the run path report above; 'readelf -d $PKG_DIR/deps/lib/libtensorflow_framework.so.2' shows them"
  RUNPATH_OK=true
  bash "$HERE/check_runpath.sh" "$PKG_DIR/deps/lib" "$PKG_DIR/deps/nvidia" | sed 's/^/[native]   /' || RUNPATH_OK=false
  # Sourced by every make target, the Jupyter kernel launcher and the CLI (src/engine/cuda_env.ts),
  # so CUDA is found even where the run paths do not cover it.
  bash "$HERE/write_cuda_env.sh" "$PKG_DIR"
fi

# ---------------------------------------------------------------- 4. compile
step 4/5 "compiling tfjs_binding.node (node-pre-gyp rebuild --build-from-source; about a minute on 2 cores)" \
  "read the compiler output above; it needs g++, make, python3 and Node's headers under $NODE_PREFIX/include/node"
# String- and type-list op attributes (the fused ops), which the stock binding cannot set, and the
# signal guard (a signal during a matrix product corrupted the heap): patch_binding.py says why.
"$PY" "$HERE/patch_binding.py" "$PKG_DIR"
(
  cd "$PKG_DIR"
  export npm_config_nodedir="$NODE_PREFIX" JOBS=max
  [[ -n $NODE_GYP_JS && -f $NODE_GYP_JS ]] && export npm_config_node_gyp="$NODE_GYP_JS"
  node node_modules/@mapbox/node-pre-gyp/bin/node-pre-gyp rebuild --build-from-source \
    --build-latest-napi-version-only --nodedir="$NODE_PREFIX" --loglevel=warn 2>&1 \
    | grep -v -E "^(gyp info|make: (Entering|Leaving))" || true
)
BINDING=$(cd "$PKG_DIR" && node -p "require('@mapbox/node-pre-gyp').find(require('path').resolve('package.json'))")
if [[ ! -f $BINDING ]]; then HINT="no $BINDING after compiling: read the compiler output above"; false; fi
if [[ $CUSTOM_OPS != none ]]; then
  # This project's kernels as a Node addon that registers its ops in the libtensorflow_framework
  # the binding loads, for AVX2 (bias_init_ops.node) and AVX-512 (bias_init_ops_avx512.node); the
  # engine loads the widest the CPU runs (src/engine/custom_ops.ts). Flags: compile_ops.sh.
  HINT="read the compiler output above (tools/native/ops/*.cc against the wheel's headers)"
  say "  compiling this project's kernels (tools/native/ops/*.cc), for AVX2 and for AVX-512"
  mkdir -p "$PKG_DIR/bias-ops"
  source "$HERE/compile_ops.sh"
  compile_kernels "$HERE/ops" "$PKG_DIR/deps/include" "$NODE_PREFIX/include/node" "$PKG_DIR/deps/lib" "$PKG_DIR/bias-ops/bias_init_ops"
fi
# Headers (~290 MB) are only needed to compile; a rebuild (--force) unpacks them again.
rm -rf "$PKG_DIR/deps/include" "$PKG_DIR/build"

# ---------------------------------------------------------------- 5. verify
step 5/5 "verifying: backend 'tensorflow', conv2d/depthwise gradients vs pure JS, momentum step" \
  "run 'TF_CPP_MIN_LOG_LEVEL=2 node $HERE/verify.cjs $PKG_DIR $REPO' and read its message"
VERIFY_LOG=$(mktemp)
# $1: "bare" (no LD_LIBRARY_PATH: the binding's rpath $ORIGIN/../../deps/lib must suffice) or
# "cuda-env" (the GPU build's cuda-env.sh sourced first). NVIDIA_TF32_OVERRIDE=0: on a GPU, TF32
# convolutions would not match the float32 reference to 1e-4.
verify() {
  local prefix="unset LD_LIBRARY_PATH;"
  [[ $1 == cuda-env ]] && prefix="source '$PKG_DIR/cuda-env.sh';"
  bash -c "$prefix"' TF_CPP_MIN_LOG_LEVEL=2 NVIDIA_TF32_OVERRIDE=0 exec node "$@"' verify "$HERE/verify.cjs" "$PKG_DIR" "$REPO" 2>"$VERIFY_LOG" \
    || { cat "$VERIFY_LOG" >&2; rm -f "$VERIFY_LOG"; false; }
}
gpu_seen() { [[ $(node -p "JSON.parse(process.argv[1]).gpuDevice" "$1") == true ]]; }
FACTS=$(verify bare)
CUDA_ENV_NEEDED=false
if [[ $VARIANT == gpu ]] && ! gpu_seen "$FACTS"; then
  say "  TF saw no GPU with the run paths alone; again with $PKG_DIR/cuda-env.sh (LD_LIBRARY_PATH)"
  FACTS=$(verify cuda-env)
  CUDA_ENV_NEEDED=true
fi
if [[ -s $VERIFY_LOG ]]; then say "  stderr while loading (TF_CPP_MIN_LOG_LEVEL=2):"; sed 's/^/    /' "$VERIFY_LOG"; fi
rm -f "$VERIFY_LOG"

if [[ $VARIANT == gpu ]] && ! gpu_seen "$FACTS"; then
  # The build loads, but TensorFlow sees no GPU: on the CPU it would run without saying so.
  HINT="follow the diagnosis above ('make doctor' repeats it; TF_CPP_MIN_LOG_LEVEL=0 shows TensorFlow's own reasons)"
  say "  the GPU build loads but TensorFlow sees no GPU; the doctor's diagnosis:"
  (cd "$REPO" && BIAS_INIT_NATIVE_DIR="$NATIVE" node --import tsx src/engine/doctor_main.ts 2>&1 | sed 's/^/    /') || true
  false
fi

node -e '
  const [out, facts, variant, pkg, wheel, binding, pkgDir, secs, cuda, runpathOk, cudaEnvNeeded, patches, ops] = process.argv.slice(1);
  const gpu = variant === "gpu" ? {
    cudaWheels: cuda.split(" "),
    runpathCoversCuda: runpathOk === "true",
    cudaEnv: require("path").join(pkgDir, "cuda-env.sh"),
    cudaEnvNeeded: cudaEnvNeeded === "true",
  } : {};
  const r = Object.assign({ variant, package: pkg, wheel }, JSON.parse(facts), gpu, {
    packageDir: pkgDir, bindingPath: binding, bindingPatches: patches, customOps: ops,
    runtimeEnv: { TF_CPP_MIN_LOG_LEVEL: "2 (optional, silences the absl banner)" },
    buildSeconds: Number(secs), builtAt: new Date().toISOString() });
  require("fs").writeFileSync(out, JSON.stringify(r, null, 2) + "\n");' \
  "$READY" "$FACTS" "$VARIANT" "$NPM_PKG" "$WHEEL_STEM" "$BINDING" "$PKG_DIR" "$((SECONDS - START))" \
  "${CUDA_REQS[*]:-}" "${RUNPATH_OK:-}" "$CUDA_ENV_NEEDED" "$BINDING_PATCHES" "$CUSTOM_OPS"
rm -f "$FAILED"

# Hand the page cache of the libraries this build wrote back to the kernel (written to disk first).
# Pages cached from the build's own writes come in large folios, and a process that loads the
# library maps whole folios: on the AVX2 guest libtensorflow_cc.so.2's code read 138 instead of
# 105 MB resident per process until the cache was dropped (docs/performance.md, "Peak memory").
# Loading reads the library back in the usual way.
find "$PKG_DIR/deps" "$PKG_DIR/lib" "$PKG_DIR/bias-ops" -type f \( -name '*.so' -o -name '*.so.*' -o -name '*.node' \) -print0 2>/dev/null | xargs -0 -r "$PY" -c '
import os, sys
for name in sys.argv[1:]:
    fd = os.open(name, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)' || say "  (could not drop the page cache of the built libraries; harmless)"

step_done
say "done in $((SECONDS - START)) s (steps: ${TIMES%, }): require('$PKG_DIR') gives backend 'tensorflow' (TF $(node -p "JSON.parse(require('fs').readFileSync('$READY', 'utf8')).tfVersion"))$TAG"
say "facts written to $READY; disk used by .native: $(du -sh "$NATIVE" | cut -f1)"
