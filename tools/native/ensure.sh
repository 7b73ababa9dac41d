#!/usr/bin/env bash
# The `engine` prerequisite of `make run`, `make lab`, `make report` and `make bench`: builds the
# native engine on first use, the GPU variant when `nvidia-smi -L` lists a GPU, else the CPU one.
# Idempotent: with the build in place, build.sh answers "already built" in well under a second.
#
#   BIAS_INIT_BACKEND=js       no build: pure JavaScript on purpose
#   BIAS_INIT_BACKEND=auto     (default) a failed build prints ONE loud message (the failing step and
#                              what to do) and the run continues on what loads (pure JS at worst)
#   BIAS_INIT_BACKEND=native   a failed build fails the command (exit 1), never a silent fallback
#   BIAS_INIT_BACKEND=cuda     the GPU build, or exit 1
#
# A failed build leaves <native dir>/FAILED-<variant>; later runs do not retry it (that would cost
# minutes each time) but repeat the message. `make native` / `make native-gpu` retry.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
native="${BIAS_INIT_NATIVE_DIR:-$root/.native}"
mode=$(echo "${BIAS_INIT_BACKEND:-auto}" | tr '[:upper:]' '[:lower:]' | tr -d '[:space:]')
mode=${mode:-auto}

say() { echo "[engine] $*"; }
case "$mode" in
  js) say "BIAS_INIT_BACKEND=js: pure JavaScript on purpose, no native build"; exit 0 ;;
  auto|native|cuda) ;;
  *) echo "[engine] BIAS_INIT_BACKEND: \"$mode\" is not an engine; use one of auto, cuda, native, js" >&2; exit 2 ;;
esac

gpu_listed=false
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU [0-9]'; then gpu_listed=true; fi

# Prints the loud message for a failed variant from its FAILED file.
loud() {
  local variant=$1 target=$2 then=$3 step hint
  step=$(sed -n 1p "$native/FAILED-$variant" 2>/dev/null)
  hint=$(sed -n 2p "$native/FAILED-$variant" 2>/dev/null)
  {
    echo "========================================================================================"
    echo "[engine] THE NATIVE ENGINE BUILD FAILED ($variant variant) at step ${step:-unknown}."
    echo "[engine] what to do: ${hint:-read the build output above}"
    echo "[engine] then retry with '$target' ('make doctor' explains this machine; BIAS_INIT_BACKEND=js skips the build)."
    echo "[engine] $then"
    echo "========================================================================================"
  } >&2
}

# Builds one variant unless it failed before; returns build.sh's status.
build() {
  local variant=$1 target=$2 args=()
  [[ $variant == gpu ]] && args=(--gpu)
  if [[ -f $native/FAILED-$variant ]]; then
    say "the $variant build failed before ($native/FAILED-$variant); not retrying here"
    return 1
  fi
  local t0=$SECONDS
  bash "$here/build.sh" "${args[@]}"
  local rc=$?
  (( SECONDS - t0 > 2 )) && say "$variant engine build took $((SECONDS - t0)) s"
  return "$rc"
}

if [[ $mode == cuda || $gpu_listed == true ]]; then
  [[ $gpu_listed == true ]] && say "nvidia-smi lists a GPU: the GPU engine (make native-gpu)"
  if build gpu "make native-gpu"; then exit 0; fi
  if [[ $mode == cuda ]]; then
    loud gpu "make native-gpu" "BIAS_INIT_BACKEND=cuda: stopping here."
    exit 1
  fi
  loud gpu "make native-gpu" "Falling back to the CPU build (the GPU sits idle)."
fi

if build cpu "make native"; then exit 0; fi
if [[ $mode == native ]]; then
  loud cpu "make native" "BIAS_INIT_BACKEND=native: stopping here."
  exit 1
fi
loud cpu "make native" "This run continues on the pure-JS engine (EfficientNet-B1 trains ~6x slower there)."
exit 0
