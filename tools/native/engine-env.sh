# Sourced (not run) by the Makefile's engine targets and the Jupyter kernel launcher: loads the GPU
# build's cuda-env.sh when that build exists and the engine is not forced to pure JS. Quiet, and a
# no-op on machines without the GPU build.
#   source tools/native/engine-env.sh
__bias_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
__bias_cuda_env="${BIAS_INIT_NATIVE_DIR:-$__bias_root/.native}/tfjs-node-gpu/cuda-env.sh"
if [ -f "$__bias_cuda_env" ] && [ "${BIAS_INIT_BACKEND:-auto}" != "js" ]; then
  . "$__bias_cuda_env"
fi
unset __bias_root __bias_cuda_env
