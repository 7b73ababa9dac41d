#!/usr/bin/env bash
# Writes PKG_DIR/cuda-env.sh for the GPU build: LD_LIBRARY_PATH with every deps/nvidia/<pkg>/lib,
# TF_FORCE_GPU_ALLOW_GROWTH=true unless set, and BIAS_INIT_CUDA_ENV naming the file (so sourcing
# it twice changes nothing and the CLI knows it was loaded). Sourced by tools/native/engine-env.sh
# (every make target that runs the engine), the Jupyter kernel launcher and the CLI.
#   bash tools/native/write_cuda_env.sh PKG_DIR
set -euo pipefail
pkg_dir=$(cd "${1:?usage: write_cuda_env.sh PKG_DIR}" && pwd)
shopt -s nullglob
dirs=("$pkg_dir"/deps/nvidia/*/lib)
lib_path=$(IFS=:; echo "${dirs[*]}")
cat > "$pkg_dir/cuda-env.sh" <<SH
# Written by tools/native/build.sh --gpu: the CUDA 12 libraries of the nvidia-*-cu12 wheels in
# $pkg_dir/deps/nvidia, for TensorFlow's dlopen when its run paths do not find them.
if [ "\${BIAS_INIT_CUDA_ENV:-}" != "$pkg_dir/cuda-env.sh" ]; then
  export LD_LIBRARY_PATH="$lib_path\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
  export TF_FORCE_GPU_ALLOW_GROWTH="\${TF_FORCE_GPU_ALLOW_GROWTH:-true}"
  export BIAS_INIT_CUDA_ENV="$pkg_dir/cuda-env.sh"
fi
SH
echo "[native]   wrote $pkg_dir/cuda-env.sh (${#dirs[@]} library folders)"
