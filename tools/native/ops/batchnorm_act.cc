// Training-mode BatchNorm (+ SiLU) as two TensorFlow ops with AVX2/FMA or AVX-512 kernels, for CPUs where
// TensorFlow's wheel runs Eigen kernels built for AVX only (docs/performance.md, item 18).
//
//   BiasInitBatchNormAct(x, gamma, beta, running_mean, running_var)
//       -> y, new_running_mean, new_running_var, mean, invstd
//   BiasInitBatchNormActApply(x, gamma, beta, mean, invstd) -> y   (the forward's second pass)
//   BiasInitBatchNormActGrad(dy, x, gamma, beta, mean, invstd) -> dx, dgamma, dbeta
//   BiasInitBatchNormActGradScaled(dy, x, gamma, beta, mean, invstd, scale, shift) -> the same, of
//       fma(dy, scale, shift) per sample and channel (squeeze-excitation's backward affine)
//   BiasInitBatchNormResidual(x, gamma, beta, running_mean, running_var, scale, residual)
//       -> BiasInitBatchNormAct's outputs without SiLU, y = ((x - mean) * a + beta) * scale[n] + residual
//       (an MBConv block's projection BatchNorm, stochastic depth's row factor and the residual sum;
//       its gradient is BiasInitBatchNormActGradScaled's with the factor as scale)
//
// x is NHWC float32 seen as [rows, channels]. The forward reads x twice: per-channel sum and sum of
// squares in double, then y = act((x - mean) * a + beta) with a = gamma * invstd (centring first
// loses less than x * a + b where a channel's mean is large against its spread, though the mean is
// still rounded to float: docs/performance.md, item 18). It folds the running statistics with
// PyTorch's rule (momentum, unbiased variance). The backward recomputes z instead of keeping it, so
// the training step saves x, mean and invstd per layer (TensorFlow's FusedBatchNormV3 path kept z
// and y as well). Its first pass writes g = dy * act'(z) into dx and sums g and g * xhat per
// channel (double); the second turns g into dx = a * (g - mean(g) - xhat * mean(g * xhat)) in place.
// SiLU is z / (1 + exp(-z)) and its derivative s * (1 + z * (1 - s)), PyTorch's formulas.
// Sums are taken over fixed blocks of rows, then added in block order: results do not depend on the
// thread count.
//
// Built by tools/native/build.sh into the kernels' Node addons (addon.cc), for AVX2 + FMA and for
// AVX-512 (simd.h); the engine loads one that the CPU runs (src/engine/custom_ops.ts). Tested against
// TensorFlow's FusedBatchNormV3 path (test/native_ops.test.ts) and, in the model, against torch
// autograd (test/training_parity.test.ts).

#include <algorithm>
#include <cmath>
#include <vector>

#include "batchnorm_rows.h"
#include "simd.h"

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::shape_inference::InferenceContext;

// y like x, then four per-channel vectors like gamma: the outputs of the ops that take the batch's statistics.
absl::Status StatisticsShapes(InferenceContext* c) {
  c->set_output(0, c->input(0));
  for (int i = 1; i < 5; ++i) c->set_output(i, c->input(1));
  return absl::OkStatus();
}

REGISTER_OP("BiasInitBatchNormAct")
    .Input("x: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Input("running_mean: float")
    .Input("running_var: float")
    .Output("y: float")
    .Output("new_running_mean: float")
    .Output("new_running_var: float")
    .Output("mean: float")
    .Output("invstd: float")
    .Attr("epsilon: float")
    .Attr("momentum: float")
    .Attr("activation: bool")
    .SetShapeFn(StatisticsShapes);

REGISTER_OP("BiasInitBatchNormActApply")
    .Input("x: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Input("mean: float")
    .Input("invstd: float")
    .Output("y: float")
    .Attr("activation: bool")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    });

absl::Status GradShapes(InferenceContext* c) {
  c->set_output(0, c->input(1));
  c->set_output(1, c->input(2));
  c->set_output(2, c->input(2));
  return absl::OkStatus();
}

REGISTER_OP("BiasInitBatchNormActGrad")
    .Input("dy: float")
    .Input("x: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Input("mean: float")
    .Input("invstd: float")
    .Output("dx: float")
    .Output("dgamma: float")
    .Output("dbeta: float")
    .Attr("activation: bool")
    .SetShapeFn(GradShapes);

// The same with dy taken as fma(dy, scale, shift) per sample and channel (scale, shift [N, C], x
// NHWC): squeeze-excitation's backward affine (BiasInitChannelAffine) read in pass 1 instead of
// written as a tensor of its own; the same fma, so the same bits.
REGISTER_OP("BiasInitBatchNormActGradScaled")
    .Input("dy: float")
    .Input("x: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Input("mean: float")
    .Input("invstd: float")
    .Input("scale: float")
    .Input("shift: float")
    .Output("dx: float")
    .Output("dgamma: float")
    .Output("dbeta: float")
    .Attr("activation: bool")
    .SetShapeFn(GradShapes);

// BatchNorm without activation, each sample's rows times its factor scale [N], plus residual (x's
// shape): the three roundings of BiasInitBatchNormAct, TensorFlow's Mul and its AddV2, in that order,
// so the same bits as those three ops; one pass writes y where they took three.
REGISTER_OP("BiasInitBatchNormResidual")
    .Input("x: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Input("running_mean: float")
    .Input("running_var: float")
    .Input("scale: float")
    .Input("residual: float")
    .Output("y: float")
    .Output("new_running_mean: float")
    .Output("new_running_var: float")
    .Output("mean: float")
    .Output("invstd: float")
    .Attr("epsilon: float")
    .Attr("momentum: float")
    .SetShapeFn(StatisticsShapes);

namespace {

using bias_init::ActivationKernel;
using bias_init::ApplyBatchNormAct;
using bias_init::BatchStatistics;
using bias_init::BlockSums;
using bias_init::CheckInputs;
using bias_init::ForBlocks;
using bias_init::ForVectors;
using bias_init::GradFromSums;
using bias_init::GradTerms;
using bias_init::kBlockRows;
using bias_init::Rounded;
using bias_init::ScaleOf;

class BatchNormActOp : public ActivationKernel {
 public:
  explicit BatchNormActOp(OpKernelConstruction* ctx) : ActivationKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("momentum", &momentum_));
  }

  void Compute(OpKernelContext* ctx) override {
    // Pass 1 (BatchStatistics), then pass 2: y = act((x - mean) * a + beta).
    std::vector<float> a, m;
    OP_REQUIRES_OK(ctx, BatchStatistics(ctx, epsilon_, momentum_, &a, &m));
    const Tensor& x = ctx->input(0);
    const int64_t channels = x.dim_size(x.dims() - 1);
    const int64_t rows = x.NumElements() / channels;
    Tensor* y;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    ApplyBatchNormAct(ctx, x.flat<float>().data(), y->flat<float>().data(), rows, channels, m.data(), a.data(), ctx->input(2).flat<float>().data(), activation_);
  }

 private:
  float epsilon_, momentum_;
};

class BatchNormResidualOp : public OpKernel {
 public:
  explicit BatchNormResidualOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("momentum", &momentum_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& scale = ctx->input(5);
    const Tensor& residual = ctx->input(6);
    OP_REQUIRES(ctx, x.dims() == 4 && residual.shape() == x.shape() && scale.dims() == 1 && scale.dim_size(0) == x.dim_size(0),
                tensorflow::errors::InvalidArgument("x and residual must be the same NHWC shape and scale [N], got ", x.shape().DebugString(), ", ",
                                                    residual.shape().DebugString(), " and ", scale.shape().DebugString()));
    // Pass 1 (BatchStatistics), then y = fma(x - mean, a, beta) * scale[n] + residual.
    std::vector<float> a, m;
    OP_REQUIRES_OK(ctx, BatchStatistics(ctx, epsilon_, momentum_, &a, &m));
    const int64_t channels = x.dim_size(3);
    const int64_t rows = x.NumElements() / channels;
    const int64_t per_sample = x.dim_size(1) * x.dim_size(2);
    Tensor* y;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    const float* xp = x.flat<float>().data();
    const float* rp = residual.flat<float>().data();
    const float* sp = scale.flat<float>().data();
    const float* beta = ctx->input(2).flat<float>().data();
    float* yp = y->flat<float>().data();
    ForBlocks(ctx, rows, channels, 4, [&](int64_t b0, int64_t b1) {
      for (int64_t r = b0 * kBlockRows, end = std::min(rows, b1 * kBlockRows); r < end; ++r) {
        const float s = sp[r / per_sample];
        const float* xr = xp + r * channels;
        const float* rr = rp + r * channels;
        float* yr = yp + r * channels;
        int64_t c = ForVectors(channels, [&](auto f, int64_t c) {
          using F = decltype(f);
          const typename F::V z = F::Fma(F::Sub(F::Load(xr + c), F::Load(&m[c])), F::Load(&a[c]), F::Load(beta + c));
          F::Store(yr + c, F::Add(Rounded(F::Mul(z, F::Set(s))), F::Load(rr + c)));
        });
        for (; c < channels; ++c) yr[c] = Rounded(std::fma(xr[c] - m[c], a[c], beta[c]) * s) + rr[c];
      }
    });
  }

 private:
  float epsilon_, momentum_;
};

// The forward's second pass alone, with the statistics the forward returned: what a fused op
// (src/model/ops/native_conv.ts nativeBatchNormActDepthwise) runs in the backward pass of a strided
// layer to recompute y instead of keeping it (at stride 1 batchnorm_depthwise.cc's gradient op
// recomputes it itself).
class BatchNormActApplyOp : public ActivationKernel {
 public:
  explicit BatchNormActApplyOp(OpKernelConstruction* ctx) : ActivationKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    OP_REQUIRES_OK(ctx, CheckInputs(x, {&ctx->input(1), &ctx->input(2), &ctx->input(3), &ctx->input(4)}));
    const int64_t channels = x.dim_size(x.dims() - 1);
    const int64_t rows = channels == 0 ? 0 : x.NumElements() / channels;
    Tensor* y;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    const std::vector<float> a = ScaleOf(ctx->input(1).flat<float>().data(), ctx->input(4).flat<float>().data(), channels);
    ApplyBatchNormAct(ctx, x.flat<float>().data(), y->flat<float>().data(), rows, channels, ctx->input(3).flat<float>().data(), a.data(),
                      ctx->input(2).flat<float>().data(), activation_);
  }
};

template <bool kScaled>
class BatchNormActGradOp : public ActivationKernel {
 public:
  explicit BatchNormActGradOp(OpKernelConstruction* ctx) : ActivationKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& x = ctx->input(1);
    OP_REQUIRES(ctx, dy.shape() == x.shape(), tensorflow::errors::InvalidArgument("dy ", dy.shape().DebugString(), " and x ", x.shape().DebugString(), " differ"));
    OP_REQUIRES_OK(ctx, CheckInputs(x, {&ctx->input(2), &ctx->input(3), &ctx->input(4), &ctx->input(5)}));
    const int64_t channels = x.dim_size(x.dims() - 1);
    const int64_t rows = channels == 0 ? 0 : x.NumElements() / channels;
    // The per-sample affine of dy (kScaled): rows of one sample share a row of scale and shift.
    const float* scale = nullptr;
    const float* shift = nullptr;
    int64_t per_sample = 1;
    if (kScaled) {
      const Tensor& sc = ctx->input(6);
      const Tensor& sh = ctx->input(7);
      OP_REQUIRES(ctx, x.dims() == 4 && sc.dims() == 2 && sc.dim_size(0) == x.dim_size(0) && sc.dim_size(1) == channels && sh.shape() == sc.shape(),
                  tensorflow::errors::InvalidArgument("scale and shift must be [N, C] of NHWC x ", x.shape().DebugString(), ", got ", sc.shape().DebugString(), " and ", sh.shape().DebugString()));
      scale = sc.flat<float>().data();
      shift = sh.flat<float>().data();
      per_sample = x.dim_size(1) * x.dim_size(2);
    }
    Tensor *dx, *dgamma, *dbeta;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({channels}), &dgamma));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({channels}), &dbeta));
    const float* dyp = dy.flat<float>().data();
    const float* xp = x.flat<float>().data();
    float* dxp = dx->flat<float>().data();
    const float* gamma = ctx->input(2).flat<float>().data();
    const float* beta = ctx->input(3).flat<float>().data();
    const float* mean = ctx->input(4).flat<float>().data();
    const float* invstd = ctx->input(5).flat<float>().data();
    const std::vector<float> a = ScaleOf(gamma, invstd, channels);

    // Pass 1: g = dy * act'(z) into dx; per-block sums of g and g * xhat in double.
    const GradTerms terms{mean, a.data(), beta, invstd, activation_};
    BlockSums partial(rows, channels);
    ForBlocks(ctx, rows, channels, activation_ ? 28 : 4, [&](int64_t b0, int64_t b1) {
      for (int64_t blk = b0; blk < b1; ++blk) {
        double* sg = partial.Start(blk);
        double* sgx = sg + channels;
        for (int64_t r = blk * kBlockRows, end = std::min(rows, r + kBlockRows); r < end; ++r) {
          const float* xr = xp + r * channels;
          const float* dyr = dyp + r * channels;
          float* gr = dxp + r * channels;
          const float* sr = kScaled ? scale + (r / per_sample) * channels : nullptr;
          const float* br = kScaled ? shift + (r / per_sample) * channels : nullptr;
          int64_t c = ForVectors(channels, [&](auto f, int64_t c) {
            using F = decltype(f);
            const typename F::V dyv = kScaled ? F::Fma(F::Load(dyr + c), F::Load(sr + c), F::Load(br + c)) : F::Load(dyr + c);
            terms.Vector<F>(dyv, xr, gr, nullptr, c, sg, sgx);
          });
          for (; c < channels; ++c) terms.One(kScaled ? std::fma(dyr[c], sr[c], br[c]) : dyr[c], xr, gr, nullptr, c, sg, sgx);
        }
      }
    });
    GradFromSums(ctx, partial, rows, channels, xp, dxp, gamma, mean, invstd, a.data(), dgamma->flat<float>().data(), dbeta->flat<float>().data());
  }
};

REGISTER_KERNEL_BUILDER(Name("BiasInitBatchNormAct").Device(tensorflow::DEVICE_CPU), BatchNormActOp);
REGISTER_KERNEL_BUILDER(Name("BiasInitBatchNormActApply").Device(tensorflow::DEVICE_CPU), BatchNormActApplyOp);
REGISTER_KERNEL_BUILDER(Name("BiasInitBatchNormActGrad").Device(tensorflow::DEVICE_CPU), BatchNormActGradOp<false>);
REGISTER_KERNEL_BUILDER(Name("BiasInitBatchNormActGradScaled").Device(tensorflow::DEVICE_CPU), BatchNormActGradOp<true>);
REGISTER_KERNEL_BUILDER(Name("BiasInitBatchNormResidual").Device(tensorflow::DEVICE_CPU), BatchNormResidualOp);

}  // namespace
