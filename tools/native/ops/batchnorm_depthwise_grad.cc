// The backward pass of training's BatchNorm + SiLU followed by a stride-1 depthwise convolution
// (src/model/ops/native_conv.ts nativeBatchNormActDepthwise), as one op (docs/performance.md, item 32):
//
//   BiasInitBatchNormActDepthwiseGrad(dd, e, gamma, beta, mean, invstd, w) -> de, dgamma, dbeta, dw
//
// dd is the gradient of the convolution's output, e the BatchNorm's input (NHWC), mean and invstd
// the batch statistics its forward returned, w the depthwise filter [k, k, C, 1]; attributes stride
// (1 only), pad and activation. It replaces three ops, with the same bits:
//   BiasInitBatchNormActApply(e) -> y          reads e, writes y (one exp per value)
//   BiasInitDepthwiseConvGrad(dd, y, w) -> dy, dw   writes dy
//   BiasInitBatchNormActGrad(dy, e) -> de, dgamma, dbeta   reads dy and e (one exp per value), ...
// Here pass 1 computes dy a block of 64 values (BatchNorm's summing blocks, batchnorm_rows.h) at a
// time with the depthwise kernel's row code (InputGradientRow over a range of columns), and hands
// each sum, still in registers, to BatchNorm's pass 1 (GradTerms), which also writes y from the same
// exp. dy is never written, e is read once less, one exp per value is saved, and the op count drops
// by two per block. Then dw from y (FilterGradient), and BatchNorm's pass 2 (GradFromSums). Every
// value and sum is computed by the same code in the same order as in the three ops, so the results
// are bit-identical to them (test/layer_fusion.test.ts). Strided layers keep the three ops: their dx
// runs another gather (depthwise_conv.cc InputGradients).
#include <algorithm>
#include <vector>

#include "batchnorm_rows.h"
#include "depthwise_filter_grad.h"
#include "depthwise_rows.h"
#include "simd.h"

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::shape_inference::InferenceContext;

REGISTER_OP("BiasInitBatchNormActDepthwiseGrad")
    .Input("dd: float")
    .Input("e: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Input("mean: float")
    .Input("invstd: float")
    .Input("w: float")
    .Output("de: float")
    .Output("dgamma: float")
    .Output("dbeta: float")
    .Output("dw: float")
    .Attr("stride: int >= 1")
    .Attr("pad: int >= 0")
    .Attr("activation: bool")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(2));
      c->set_output(2, c->input(2));
      c->set_output(3, c->input(6));
      return absl::OkStatus();
    });

namespace {

using bias_init::GradTerms;
using bias_init::kBlockRows;

// Where InputGradientRow puts dy here: a block's values in a buffer of kBlockRows rows that stays
// in cache (base: the block's first value in de, whose addresses the row code computes).
struct ToBlockBuffer {
  const float* base;
  float* buffer;

  template <typename F>
  void Vector(typename F::V dy, float* out, int64_t c) const { F::Store(buffer + (out - base) + c, dy); }
  void One(float dy, float* out, int64_t c) const { buffer[(out - base) + c] = dy; }
};

class BatchNormActDepthwiseGradOp : public bias_init::ActivationKernel {
 public:
  explicit BatchNormActDepthwiseGradOp(OpKernelConstruction* ctx) : ActivationKernel(ctx) {
    int64_t stride;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("stride", &stride));
    OP_REQUIRES(ctx, stride == 1, tensorflow::errors::InvalidArgument("BiasInitBatchNormActDepthwiseGrad runs stride 1 only, got ", stride));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("pad", &pad_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dd = ctx->input(0);
    const Tensor& e = ctx->input(1);
    const Tensor& w = ctx->input(6);
    bias_init::Geometry g;
    OP_REQUIRES_OK(ctx, bias_init::ReadGeometry(e, w, 1, pad_, &g));
    OP_REQUIRES_OK(ctx, bias_init::CheckInputs(e, {&ctx->input(2), &ctx->input(3), &ctx->input(4), &ctx->input(5)}));
    OP_REQUIRES(ctx, dd.shape() == TensorShape({g.n, g.oh, g.ow, g.c}),
                tensorflow::errors::InvalidArgument("dd must be [", g.n, ", ", g.oh, ", ", g.ow, ", ", g.c, "], got ", dd.shape().DebugString()));
    Tensor *de, *dgamma, *dbeta, *dw;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, e.shape(), &de));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({g.c}), &dgamma));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({g.c}), &dbeta));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, w.shape(), &dw));
    Tensor y;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_FLOAT, e.shape(), &y));
    const float* ddp = dd.flat<float>().data();
    const float* ep = e.flat<float>().data();
    const float* wp = w.flat<float>().data();
    float* dep = de->flat<float>().data();
    float* yp = y.flat<float>().data();
    const float* gamma = ctx->input(2).flat<float>().data();
    const float* beta = ctx->input(3).flat<float>().data();
    const float* mean = ctx->input(4).flat<float>().data();
    const float* invstd = ctx->input(5).flat<float>().data();
    const std::vector<float> a = bias_init::ScaleOf(gamma, invstd, g.c);
    const GradTerms terms{mean, a.data(), beta, invstd, activation_};

    // Pass 1 by BatchNorm's blocks of values (rows of [N * H * W, C]): each block's stretches of
    // input rows, dy computed there and turned into g, y and the block's sums at once.
    const int64_t rows = g.n * g.h * g.w;
    const int64_t blocks = (rows + kBlockRows - 1) / kBlockRows;
    std::vector<double> partial(blocks * 2 * g.c, 0.0);
    bias_init::ForBlocks(ctx, rows, g.c, g.k * g.k * 2 + (activation_ ? 28 : 4), [&](int64_t b0, int64_t b1) {
      std::vector<float> buffer(kBlockRows * g.c);
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t first = blk * kBlockRows, end = std::min(rows, first + kBlockRows);
        const ToBlockBuffer to_buffer{dep + first * g.c, buffer.data()};
        for (int64_t r = first; r < end;) {
          const int64_t row = r / g.w, x0 = r % g.w, x1 = std::min(g.w, x0 + (end - r));
          bias_init::InputGradientRow(g, ddp, wp, dep, row / g.h, row % g.h, to_buffer, x0, x1);
          r += x1 - x0;
        }
        double* sg = partial.data() + blk * 2 * g.c;
        double* sgx = sg + g.c;
        for (int64_t r = first; r < end; ++r) {
          const float* dyr = buffer.data() + (r - first) * g.c;
          const float* xr = ep + r * g.c;
          float* gr = dep + r * g.c;
          float* yr = yp + r * g.c;
          int64_t c = bias_init::ForVectors(g.c, [&](auto f, int64_t c) {
            using F = decltype(f);
            terms.Vector<F>(F::Load(dyr + c), xr, gr, yr, c, sg, sgx);
          });
          for (; c < g.c; ++c) terms.One(dyr[c], xr, gr, yr, c, sg, sgx);
        }
      }
    });

    bias_init::FilterGradient(ctx, g, ddp, yp, dw->flat<float>().data());
    bias_init::GradFromSums(ctx, partial, rows, g.c, ep, dep, gamma, mean, invstd, a.data(), dgamma->flat<float>().data(), dbeta->flat<float>().data());
  }

 private:
  int64_t pad_;
};

REGISTER_KERNEL_BUILDER(Name("BiasInitBatchNormActDepthwiseGrad").Device(tensorflow::DEVICE_CPU), BatchNormActDepthwiseGradOp);

}  // namespace
