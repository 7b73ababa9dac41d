// Squeeze-excitation's passes over the full activation, per sample and channel, as two TensorFlow
// ops with AVX2/FMA or AVX-512 kernels (simd.h) (docs/performance.md, item 20):
//
//   BiasInitChannelAffine(x [N, H, W, C], scale [N, C], shift [N, C] or [0]: zero) -> x * scale + shift
//   BiasInitChannelDot(a [N, H, W, C], b [N, H, W, C]) -> sum over H and W of a * b, [N, C]
//
// The forward scales by the gate (shift 0: fma(x, g, 0) rounds as x * g does); the backward's
// dx = dy * gate + dmean / (H * W) is one affine pass, and the gate's gradient one dot pass, where
// TensorFlow's broadcasting ops took four (Mul, Mul, Sum, Add). The dot sums in float over blocks of
// rows, then the blocks in order in double; samples run in parallel: results do not depend on the
// thread count.
#include <algorithm>
#include <vector>

#include "parallel.h"
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

REGISTER_OP("BiasInitChannelAffine")
    .Input("x: float")
    .Input("scale: float")
    .Input("shift: float")
    .Output("y: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    });

REGISTER_OP("BiasInitChannelDot")
    .Input("a: float")
    .Input("b: float")
    .Output("s: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->UnknownShapeOfRank(2));
      return absl::OkStatus();
    });

namespace {

using bias_init::ForVectors;

constexpr int64_t kDotBlockRows = 64;

absl::Status CheckPerSample(const Tensor& x, const Tensor& t, const char* name) {
  if (x.dims() != 4) return tensorflow::errors::InvalidArgument("x must be NHWC, got ", x.shape().DebugString());
  if (t.dims() != 2 || t.dim_size(0) != x.dim_size(0) || t.dim_size(1) != x.dim_size(3)) {
    return tensorflow::errors::InvalidArgument(name, " must be [", x.dim_size(0), ", ", x.dim_size(3), "], got ", t.shape().DebugString());
  }
  return absl::OkStatus();
}

class ChannelAffineOp : public OpKernel {
 public:
  explicit ChannelAffineOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    OP_REQUIRES_OK(ctx, CheckPerSample(x, ctx->input(1), "scale"));
    // A shift with no values is zero (training's forward scaling: no zero tensor made per call).
    const bool no_shift = ctx->input(2).NumElements() == 0;
    if (!no_shift) OP_REQUIRES_OK(ctx, CheckPerSample(x, ctx->input(2), "shift"));
    Tensor* y;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    const int64_t n = x.dim_size(0), hw = x.dim_size(1) * x.dim_size(2), c = x.dim_size(3);
    const float* xp = x.flat<float>().data();
    const float* sp = ctx->input(1).flat<float>().data();
    const float* bp = ctx->input(2).flat<float>().data();
    const std::vector<float> zeros(no_shift ? c : 0, 0.0f);
    float* yp = y->flat<float>().data();
    auto rows = [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float* s = sp + (r / hw) * c;
        const float* b = no_shift ? zeros.data() : bp + (r / hw) * c;
        const float* in = xp + r * c;
        float* out = yp + r * c;
        int64_t k = ForVectors(c, [&](auto f, int64_t k) {
          using F = decltype(f);
          F::Store(out + k, F::Fma(F::Load(in + k), F::Load(s + k), F::Load(b + k)));
        });
        for (; k < c; ++k) out[k] = std::fma(in[k], s[k], b[k]);
      }
    };
    bias_init::ParallelUnits(ctx, n * hw, c * 2, rows);
  }
};

class ChannelDotOp : public OpKernel {
 public:
  explicit ChannelDotOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& a = ctx->input(0);
    const Tensor& b = ctx->input(1);
    OP_REQUIRES(ctx, a.dims() == 4 && a.shape() == b.shape(),
                tensorflow::errors::InvalidArgument("a and b must be the same NHWC shape, got ", a.shape().DebugString(), " and ", b.shape().DebugString()));
    const int64_t n = a.dim_size(0), hw = a.dim_size(1) * a.dim_size(2), c = a.dim_size(3);
    Tensor* s;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({n, c}), &s));
    const float* ap = a.flat<float>().data();
    const float* bp = b.flat<float>().data();
    float* sp = s->flat<float>().data();
    // One sample per unit of work: its blocks of rows summed in float, added in order in double.
    auto samples = [&](int64_t n0, int64_t n1) {
      std::vector<float> block(c);
      std::vector<double> total(c);
      for (int64_t i = n0; i < n1; ++i) {
        std::fill(total.begin(), total.end(), 0.0);
        for (int64_t r0 = 0; r0 < hw; r0 += kDotBlockRows) {
          std::fill(block.begin(), block.end(), 0.0f);
          for (int64_t r = r0, end = std::min(hw, r0 + kDotBlockRows); r < end; ++r) {
            const float* x = ap + (i * hw + r) * c;
            const float* y = bp + (i * hw + r) * c;
            int64_t k = ForVectors(c, [&](auto f, int64_t k) {
              using F = decltype(f);
              F::Store(&block[k], F::Fma(F::Load(x + k), F::Load(y + k), F::Load(&block[k])));
            });
            for (; k < c; ++k) block[k] = std::fma(x[k], y[k], block[k]);
          }
          for (int64_t k = 0; k < c; ++k) total[k] += block[k];
        }
        for (int64_t k = 0; k < c; ++k) sp[i * c + k] = static_cast<float>(total[k]);
      }
    };
    bias_init::ParallelUnits(ctx, n, hw * c * 2, samples);
  }
};

REGISTER_KERNEL_BUILDER(Name("BiasInitChannelAffine").Device(tensorflow::DEVICE_CPU), ChannelAffineOp);
REGISTER_KERNEL_BUILDER(Name("BiasInitChannelDot").Device(tensorflow::DEVICE_CPU), ChannelDotOp);

}  // namespace
