// Evaluation's depthwise stage of an MBConv block as one TensorFlow op (docs/performance.md, item 27):
//
//   BiasInitDepthwiseSilu(x [N, H, W, C], w [k, k, C, 1], shift [C])
//       -> y = silu(depthwise(act(x), w) + shift) [N, OH, OW, C], pooled = mean over OH, OW of y [N, C]
//
// attributes stride, pad (as BiasInitDepthwiseConv) and input_silu: act is SiLU when it is set (x is
// then the expansion's output before its SiLU), else the identity. w and shift are the depthwise
// convolution with its BatchNorm folded in (src/model/ops/native_eval.ts); pooled is
// squeeze-excitation's squeeze. What this saves against oneDNN's ops: oneDNN's SiLU post-op,
// which on AVX2 costs more than the convolutions' own products (B1's 21 expansions at 240x240
// batch 16: 93 ms with it, 65 without), and the pass TensorFlow's Mean takes over y. The input's
// SiLU is computed once per input row into a ring of k rows per thread (they stay in cache while
// the k output rows that read them run), y's as each output is summed.
//
// The convolution is depthwise_rows.h's, the same sums in the same order as the training op; SiLU
// is simd.h's, as the BatchNorm kernels compute it. pooled adds each output row's values in column
// order in float, then the rows in order in double: results do not depend on the thread count.
#include <algorithm>
#include <vector>

#include "depthwise_rows.h"
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

REGISTER_OP("BiasInitDepthwiseSilu")
    .Input("x: float")
    .Input("w: float")
    .Input("shift: float")
    .Output("y: float")
    .Output("pooled: float")
    .Attr("stride: int >= 1")
    .Attr("pad: int >= 0")
    .Attr("input_silu: bool")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->UnknownShapeOfRank(4));
      c->set_output(1, c->UnknownShapeOfRank(2));
      return absl::OkStatus();
    });

namespace {

using bias_init::ForVectors;
using bias_init::Geometry;

// y = silu(sum + shift), stored, and added into the output row's per-channel sum.
struct ShiftSiluSum {
  static constexpr int kVectors = 1;  // two at a time measured 14% slower here (depthwise_rows.h StoreOutputs)
  const float* shift;
  float* row_sum;
  template <typename F>
  void Vector(typename F::V sum, float* out, int64_t c) const {
    const typename F::V y = bias_init::Silu<F>(F::Add(sum, F::Load(shift + c)));
    F::Store(out + c, y);
    F::Store(row_sum + c, F::Add(F::Load(row_sum + c), y));
  }
  void One(float sum, float* out, int64_t c) const {
    const float y = bias_init::Silu1(sum + shift[c]);
    out[c] = y;
    row_sum[c] += y;
  }
};

// dst[i] = silu(src[i]) for i < count.
void SiluRow(const float* src, float* dst, int64_t count) {
  int64_t i = ForVectors(count, [&](auto f, int64_t i) {
    using F = decltype(f);
    F::Store(dst + i, bias_init::Silu<F>(F::Load(src + i)));
  });
  for (; i < count; ++i) dst[i] = bias_init::Silu1(src[i]);
}

class DepthwiseSiluOp : public OpKernel {
 public:
  explicit DepthwiseSiluOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("stride", &stride_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("pad", &pad_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("input_silu", &input_silu_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& w = ctx->input(1);
    const Tensor& shift = ctx->input(2);
    Geometry g;
    OP_REQUIRES_OK(ctx, bias_init::ReadGeometry(x, w, stride_, pad_, &g));
    OP_REQUIRES(ctx, shift.dims() == 1 && shift.dim_size(0) == g.c,
                tensorflow::errors::InvalidArgument("shift must be [", g.c, "], got ", shift.shape().DebugString()));
    Tensor *y, *pooled;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({g.n, g.oh, g.ow, g.c}), &y));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({g.n, g.c}), &pooled));
    const float* xp = x.flat<float>().data();
    const float* wp = w.flat<float>().data();
    const float* sp = shift.flat<float>().data();
    float* yp = y->flat<float>().data();
    const int64_t out_rows = g.n * g.oh;
    const int64_t row_values = g.w * g.c;
    std::vector<float> row_sums(out_rows * g.c, 0.0f);
    auto rows = [&](int64_t r0, int64_t r1) {
      // Input rows after SiLU, row iy in slot iy % k; the k rows one output row reads are consecutive,
      // so they never share a slot. tag: which input row (n * H + iy) a slot holds.
      std::vector<float> ring(input_silu_ ? g.k * row_values : 0);
      std::vector<int64_t> tag(g.k, -1);
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = r / g.oh, oy = r % g.oh;
        int64_t ky0, ky1;
        bias_init::TapRange(oy, g.s, g.p, g.k, g.h, &ky0, &ky1);
        const float* in[7];
        for (int64_t ky = ky0; ky < ky1; ++ky) {
          const int64_t iy = oy * g.s - g.p + ky;
          const float* src = xp + (n * g.h + iy) * row_values;
          if (!input_silu_) {
            in[ky] = src;
            continue;
          }
          float* slot = ring.data() + (iy % g.k) * row_values;
          if (tag[iy % g.k] != n * g.h + iy) {
            SiluRow(src, slot, row_values);
            tag[iy % g.k] = n * g.h + iy;
          }
          in[ky] = slot;
        }
        bias_init::ForwardRow(g, in, wp, yp + r * g.ow * g.c, ky0, ky1, ShiftSiluSum{sp, row_sums.data() + r * g.c});
      }
    };
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    pool->ParallelFor(out_rows, g.ow * g.c * (g.k * g.k * 2 + 24), rows);

    float* pp = pooled->flat<float>().data();
    const double count = static_cast<double>(g.oh * g.ow);
    for (int64_t n = 0; n < g.n; ++n) {
      for (int64_t c = 0; c < g.c; ++c) {
        double sum = 0;
        for (int64_t oy = 0; oy < g.oh; ++oy) sum += row_sums[(n * g.oh + oy) * g.c + c];
        pp[n * g.c + c] = static_cast<float>(sum / count);
      }
    }
  }

 private:
  int64_t stride_, pad_;
  bool input_silu_;
};

}  // namespace

REGISTER_KERNEL_BUILDER(Name("BiasInitDepthwiseSilu").Device(tensorflow::DEVICE_CPU), DepthwiseSiluOp);
