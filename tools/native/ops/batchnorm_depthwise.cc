// Training's BatchNorm + SiLU followed by a depthwise convolution (src/model/ops/native_conv.ts
// nativeBatchNormActDepthwise), forward and backward as one op each (docs/performance.md, items
// 32-33):
//
//   BiasInitBatchNormActDepthwise(e, gamma, beta, running_mean, running_var, w)
//       -> d, new_running_mean, new_running_var, mean, invstd
//   BiasInitBatchNormActDepthwiseGrad(dd, e, gamma, beta, mean, invstd, w) -> de, dgamma, dbeta, dw
//
// e is the BatchNorm's input (NHWC), w the depthwise filter [k, k, C, 1], d the convolution's
// output and dd its gradient; attributes as BiasInitBatchNormAct's (epsilon, momentum, activation)
// and BiasInitDepthwiseConv's (stride, pad). Each replaces ops that wrote and read back a tensor of
// e's size, with the same bits:
// - forward (item 33): BiasInitBatchNormAct(e) -> y, then BiasInitDepthwiseConv(y) -> d. Here pass 1
//   (BatchStatistics) as before, then each thread keeps the k rows of y its output rows read in a
//   ring that stays in cache, computing each once (ApplyRows) as the convolution's row code
//   (ForwardRow) reaches it: y is never written to memory.
// - backward (item 32, stride 1): BiasInitBatchNormActApply(e) -> y (one exp per value),
//   BiasInitDepthwiseConvGrad(dd, y, w) -> dy, dw (writes dy), BiasInitBatchNormActGrad(dy, e) (reads
//   dy and e, one more exp per value). Here BatchNorm's pass 1 runs by its 64-value blocks: the
//   depthwise kernel's row code (InputGradientRow over a range of columns) computes a block's dy
//   into a buffer that stays in cache, then BatchNorm's pass 1 (GradTerms) reads it there and writes y
//   from the same exp; then dw from y (FilterGradient) and BatchNorm's pass 2 (GradFromSums). dy
//   is never written, e is read once less, one exp per value is saved. Strided layers keep the three
//   ops: their dx runs another gather (depthwise_conv.cc InputGradients).
// Every value and sum is computed by the same code in the same order as in the ops they replace, so
// the results are bit-identical to them (test/layer_fusion.test.ts).
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

REGISTER_OP("BiasInitBatchNormActDepthwise")
    .Input("e: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Input("running_mean: float")
    .Input("running_var: float")
    .Input("w: float")
    .Output("d: float")
    .Output("new_running_mean: float")
    .Output("new_running_var: float")
    .Output("mean: float")
    .Output("invstd: float")
    .Attr("epsilon: float")
    .Attr("momentum: float")
    .Attr("activation: bool")
    .Attr("stride: int >= 1")
    .Attr("pad: int >= 0")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->UnknownShapeOfRank(4));
      for (int i = 1; i < 5; ++i) c->set_output(i, c->input(1));
      return absl::OkStatus();
    });

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

class BatchNormActDepthwiseOp : public bias_init::ActivationKernel {
 public:
  explicit BatchNormActDepthwiseOp(OpKernelConstruction* ctx) : ActivationKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("momentum", &momentum_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("stride", &stride_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("pad", &pad_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& e = ctx->input(0);
    const Tensor& w = ctx->input(5);
    bias_init::Geometry g;
    OP_REQUIRES_OK(ctx, bias_init::ReadGeometry(e, w, stride_, pad_, &g));
    std::vector<float> a, m;
    OP_REQUIRES_OK(ctx, bias_init::BatchStatistics(ctx, epsilon_, momentum_, &a, &m));
    Tensor* d;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({g.n, g.oh, g.ow, g.c}), &d));
    const float* ep = e.flat<float>().data();
    const float* wp = w.flat<float>().data();
    const float* beta = ctx->input(2).flat<float>().data();
    float* dp = d->flat<float>().data();
    const int64_t row_values = g.w * g.c;
    // Output rows in two ranges per thread of TensorFlow's pool; each range keeps the input rows of
    // y its windows read in a ring of k rows (slot = input row mod k: the k rows one output row reads
    // are consecutive, so they never share a slot), each computed once as the ring reaches it (a
    // range's first output row computes up to k - 1 rows that the range before it computed too, so
    // the ranges are few and long).
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    const int64_t out_rows = g.n * g.oh, ranges = std::min<int64_t>(out_rows, 2 * pool->NumThreads());
    pool->ParallelFor(ranges, out_rows / ranges * (g.ow * g.c * g.k * g.k * 2 + g.s * row_values * (activation_ ? 24 : 2)), [&](int64_t i0, int64_t i1) {
      std::vector<float> ring(g.k * row_values);
      std::vector<int64_t> held(g.k, -1);
      for (int64_t r = i0 * out_rows / ranges, r1 = i1 * out_rows / ranges; r < r1; ++r) {
        const int64_t n = r / g.oh, oy = r % g.oh;
        int64_t ky0, ky1;
        bias_init::TapRange(oy, g.s, g.p, g.k, g.h, &ky0, &ky1);
        const float* in[7];
        for (int64_t ky = ky0; ky < ky1; ++ky) {
          const int64_t row = n * g.h + oy * g.s - g.p + ky, slot = row % g.k;
          float* y = ring.data() + slot * row_values;
          if (held[slot] != row) {
            bias_init::ApplyRows(ep + row * row_values, y, g.w, g.c, m.data(), a.data(), beta, activation_);
            held[slot] = row;
          }
          in[ky] = y;
        }
        bias_init::ForwardRow(g, in, wp, dp + r * g.ow * g.c, ky0, ky1, bias_init::StoreOutputs{});
      }
    });
  }

 private:
  float epsilon_, momentum_;
  int64_t stride_, pad_;
};

// Where InputGradientRow puts dy here: a block's values in a buffer of kBlockRows rows that stays
// in cache (base: the block's first value in de, whose addresses the row code computes).
struct ToBlockBuffer {
  static constexpr int kVectors = 2;  // a store (depthwise_rows.h StoreOutputs)
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
    bias_init::BlockSums partial(rows, g.c);
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
        double* sg = partial.Start(blk);
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

REGISTER_KERNEL_BUILDER(Name("BiasInitBatchNormActDepthwise").Device(tensorflow::DEVICE_CPU), BatchNormActDepthwiseOp);
REGISTER_KERNEL_BUILDER(Name("BiasInitBatchNormActDepthwiseGrad").Device(tensorflow::DEVICE_CPU), BatchNormActDepthwiseGradOp);

}  // namespace
