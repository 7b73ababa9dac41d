// This project's TensorFlow kernels as one Node addon (tools/native/build.sh compiles every .cc of
// this folder twice: bias-ops/bias_init_ops.node for AVX2 + FMA and bias_init_ops_avx512.node for
// AVX-512, simd.h). Loading one runs the REGISTER_OP and
// REGISTER_KERNEL_BUILDER static initializers of the other files, in the libtensorflow_framework
// the tfjs-node binding loaded, after which the binding runs the ops by name. It exports their names
// the kernels' version, which src/engine/custom_ops.ts checks against its CUSTOM_OPS_VERSION, and the
// instruction set it was compiled for ("avx2" or "avx512").
#include <node_api.h>

#include "simd.h"

namespace {
// Bump with every change to the ops' interface, numbers or speed (an older build is then rebuilt by the next
// `make run`), with src/engine/custom_ops.ts' CUSTOM_OPS_VERSION
// (build.sh reads this line to name the build in READY).
constexpr uint32_t kVersion = 22;
const char* const kOps[] = {"BiasInitBatchNormAct", "BiasInitBatchNormActApply", "BiasInitBatchNormActGrad", "BiasInitBatchNormActGradScaled", "BiasInitBatchNormActDepthwise", "BiasInitBatchNormActDepthwiseGrad", "BiasInitDepthwiseConv", "BiasInitDepthwiseConvGrad",
                            "BiasInitChannelAffine", "BiasInitChannelDot", "BiasInitDepthwiseSilu", "BiasInitExpandDepthwiseSilu", "BiasInitBatchNormResidual",
                            "BiasInitSqueezeGate", "BiasInitSqueezeGateGrad", "BiasInitMomentumStep"};
}  // namespace

NAPI_MODULE_INIT() {
  napi_value ops, name, version, isa;
  const uint32_t count = sizeof(kOps) / sizeof(kOps[0]);
  napi_create_array_with_length(env, count, &ops);
  for (uint32_t i = 0; i < count; ++i) {
    napi_create_string_utf8(env, kOps[i], NAPI_AUTO_LENGTH, &name);
    napi_set_element(env, ops, i, name);
  }
  napi_set_named_property(env, exports, "ops", ops);
  napi_create_uint32(env, kVersion, &version);
  napi_set_named_property(env, exports, "version", version);
  napi_create_string_utf8(env, bias_init::kIsa, NAPI_AUTO_LENGTH, &isa);
  napi_set_named_property(env, exports, "isa", isa);
  return exports;
}
