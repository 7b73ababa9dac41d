#!/usr/bin/env bash
# Which CUDA wheel folders the TensorFlow libraries find through their own run paths.
#   bash tools/native/check_runpath.sh DEPS_LIB_DIR NVIDIA_DIR
# TensorFlow dlopens CUDA by soname (libcudart.so.12, libcudnn.so.9, ...) from
# libtensorflow_framework.so.2 / libtensorflow_cc.so.2; the dynamic loader then searches
# LD_LIBRARY_PATH and the calling library's DT_RUNPATH. TF's wheels carry entries
# $ORIGIN/../nvidia/<pkg>/lib for the nvidia-*-cu12 wheels (TF 2.16.1 shipped without working ones:
# tensorflow#63362). This reads them with `readelf -d` and checks each NVIDIA_DIR/<pkg>/lib against
# them. Prints one line per library and one verdict; exit 0 when every folder is covered, 1 when
# some are not (then cuda-env.sh's LD_LIBRARY_PATH is what finds them), 2 when it cannot check.
set -euo pipefail
lib_dir=${1:?usage: check_runpath.sh DEPS_LIB_DIR NVIDIA_DIR}
nvidia_dir=${2:?usage: check_runpath.sh DEPS_LIB_DIR NVIDIA_DIR}
command -v readelf >/dev/null || { echo "readelf not found (Debian: apt-get install binutils); run paths not checked"; exit 2; }

all=""
for lib in libtensorflow_framework.so.2 libtensorflow_cc.so.2; do
  file="$lib_dir/$lib"
  [[ -f $file ]] || { echo "$lib: missing from $lib_dir"; exit 2; }
  entries=$(readelf -d "$file" | sed -n 's/.*(\(RUNPATH\|RPATH\)).*\[\(.*\)\]$/\2/p' | tr ':' '\n' | sed '/^$/d')
  echo "$lib: $(grep -c . <<<"$entries" || true) run path entries, $(grep -c '^\$ORIGIN/\.\./nvidia/' <<<"$entries" || true) of the form \$ORIGIN/../nvidia/<pkg>/lib"
  all+="$entries"$'\n'
done

covered=() missing=()
shopt -s nullglob
for dir in "$nvidia_dir"/*/lib; do
  pkg=$(basename "$(dirname "$dir")")
  if grep -qxF "\$ORIGIN/../nvidia/$pkg/lib" <<<"$all"; then covered+=("$pkg"); else missing+=("$pkg"); fi
done
if [[ ${#covered[@]} -eq 0 && ${#missing[@]} -eq 0 ]]; then
  echo "no CUDA wheel folders under $nvidia_dir"
  exit 2
fi
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "run paths cover every CUDA wheel folder (${covered[*]})"
  exit 0
fi
echo "run paths do NOT cover: ${missing[*]}${covered[*]:+ (covered: ${covered[*]})}; cuda-env.sh (LD_LIBRARY_PATH) finds those"
exit 1
