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

// y [N, OH, OW, C] and pooled [N, C], for both ops.
absl::Status StageShapes(InferenceContext* c) {
  c->set_output(0, c->UnknownShapeOfRank(4));
  c->set_output(1, c->UnknownShapeOfRank(2));
  return absl::OkStatus();
}

REGISTER_OP("BiasInitDepthwiseSilu")
    .Input("x: float")
    .Input("w: float")
    .Input("shift: float")
    .Output("y: float")
    .Output("pooled: float")
    .Attr("stride: int >= 1")
    .Attr("pad: int >= 0")
    .Attr("input_silu: bool")
    .SetShapeFn(StageShapes);

// The same with the block's expansion inside (docs/performance.md, item 42): x is the block's input
// [N, H, W, C_in], and act(x) is silu(x @ we + be) per position, we [C_in, C] and be [C] the
// expansion's 1x1 convolution with its BatchNorm folded in, computed into the ring row by row, or
// for small images whole images a few at a time: the expansion's output, written and read again
// between two ops, never leaves the cache.
REGISTER_OP("BiasInitExpandDepthwiseSilu")
    .Input("x: float")
    .Input("we: float")
    .Input("be: float")
    .Input("w: float")
    .Input("shift: float")
    .Output("y: float")
    .Output("pooled: float")
    .Attr("stride: int >= 1")
    .Attr("pad: int >= 0")
    .SetShapeFn(StageShapes);

namespace {

using bias_init::ForVectorGroups;
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

// dst[p * cout + c] = (sum over k of x[p * cin + k] * we[k * cout + c], from zero in k order) + be[c]
// for P positions from x and M channel vectors from c (ExpandSiluRow applies SiLU after): P x M
// chains of multiply-adds side by side, each weight vector loaded once for the P positions.
template <typename F, int P, int M>
inline void ExpandTile(const float* x, const float* we, const float* be, float* dst, int64_t cin, int64_t cout, int64_t c) {
  constexpr int64_t W = F::kWidth;
  typename F::V acc[P * M];
  for (int i = 0; i < P * M; ++i) acc[i] = F::Zero();
  for (int64_t k = 0; k < cin; ++k) {
    typename F::V b[M];
    for (int m = 0; m < M; ++m) b[m] = F::Load(we + k * cout + c + m * W);
    for (int p = 0; p < P; ++p) {
      const typename F::V a = F::Set(x[p * cin + k]);
      for (int m = 0; m < M; ++m) acc[p * M + m] = F::Fma(a, b[m], acc[p * M + m]);
    }
  }
  for (int m = 0; m < M; ++m) {
    const typename F::V bias = F::Load(be + c + m * W);
    for (int p = 0; p < P; ++p) F::Store(dst + p * cout + c + m * W, F::Add(acc[p * M + m], bias));
  }
}

constexpr int kExpandPositions = 6;  // positions per tile: 12 sums of 2 vectors + 2 weights + 1 broadcast in AVX2's 16 registers

// ExpandTile over `positions` positions: kExpandPositions at a time, then what is left in one tile.
template <typename F, int M>
inline void ExpandPositions(const float* x, const float* we, const float* be, float* dst, int64_t positions, int64_t cin, int64_t cout, int64_t c) {
  int64_t p = 0;
  for (; p + kExpandPositions <= positions; p += kExpandPositions) ExpandTile<F, kExpandPositions, M>(x + p * cin, we, be, dst + p * cout, cin, cout, c);
  x += p * cin;
  dst += p * cout;
  switch (positions - p) {
    case 5: return ExpandTile<F, 5, M>(x, we, be, dst, cin, cout, c);
    case 4: return ExpandTile<F, 4, M>(x, we, be, dst, cin, cout, c);
    case 3: return ExpandTile<F, 3, M>(x, we, be, dst, cin, cout, c);
    case 2: return ExpandTile<F, 2, M>(x, we, be, dst, cin, cout, c);
    case 1: return ExpandTile<F, 1, M>(x, we, be, dst, cin, cout, c);
  }
}

// One row of the expansion with its SiLU: dst [positions, cout] from x [positions, cin]; every lane
// sums in the same order at either vector width, and the scalar tail too (the same bits in both addons).
void ExpandSiluRow(const float* x, const float* we, const float* be, float* dst, int64_t positions, int64_t cin, int64_t cout) {
  int64_t c = ForVectorGroups<true, true>(cout, [&](auto f, auto m, int64_t v) {
    ExpandPositions<decltype(f), decltype(m)::value>(x, we, be, dst, positions, cin, cout, v);
  });
  for (; c < cout; ++c) {
    for (int64_t p = 0; p < positions; ++p) {
      float acc = 0;
      for (int64_t k = 0; k < cin; ++k) acc = std::fma(x[p * cin + k], we[k * cout + c], acc);
      dst[p * cout + c] = acc + be[c];
    }
  }
  SiluRow(dst, dst, positions * cout);
}

// The most values (H x W x C) of an image whose expansion is computed whole: 1 MB, half a core's L2
// on the Intel guest (B1's images from 30x30 down at 240x240, every one at 32x32); and of a group
// of such images expanded together, at least one image: 256 KB (groups up to 1 MB measured slower on
// B1's 8x8 24->144 at 32x32 batch 256, 0.92-0.96x the two ops against 1.08-1.16x).
constexpr int64_t kWholeImageValues = 1 << 18;
constexpr int64_t kGroupValues = 1 << 16;

// kExpand false: BiasInitDepthwiseSilu; true: BiasInitExpandDepthwiseSilu (its inputs we and be
// before w and shift; the input's act always the expansion + SiLU).
template <bool kExpand>
class DepthwiseSiluOp : public OpKernel {
 public:
  explicit DepthwiseSiluOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("stride", &stride_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("pad", &pad_));
    if (!kExpand) OP_REQUIRES_OK(ctx, ctx->GetAttr("input_silu", &input_silu_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& w = ctx->input(kExpand ? 3 : 1);
    const Tensor& shift = ctx->input(kExpand ? 4 : 2);
    const Tensor* we = kExpand ? &ctx->input(1) : nullptr;
    const Tensor* be = kExpand ? &ctx->input(2) : nullptr;
    Geometry g;
    if (kExpand) {
      OP_REQUIRES(ctx, x.dims() == 4 && we->dims() == 2 && we->dim_size(0) == x.dim_size(3),
                  tensorflow::errors::InvalidArgument("x must be NHWC and we [", x.dims() == 4 ? x.dim_size(3) : -1, ", C], got ", x.shape().DebugString(), " and ",
                                                      we->shape().DebugString()));
      OP_REQUIRES(ctx, be->dims() == 1 && be->dim_size(0) == we->dim_size(1),
                  tensorflow::errors::InvalidArgument("be must be [", we->dim_size(1), "], got ", be->shape().DebugString()));
    }
    OP_REQUIRES_OK(ctx, bias_init::ReadGeometry(x, w, stride_, pad_, &g, kExpand ? we->dim_size(1) : -1));
    const int64_t cin = x.dim_size(3);
    const bool ring_rows = kExpand || input_silu_;
    OP_REQUIRES(ctx, shift.dims() == 1 && shift.dim_size(0) == g.c,
                tensorflow::errors::InvalidArgument("shift must be [", g.c, "], got ", shift.shape().DebugString()));
    Tensor *y, *pooled;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({g.n, g.oh, g.ow, g.c}), &y));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({g.n, g.c}), &pooled));
    const float* xp = x.flat<float>().data();
    const float* wp = w.flat<float>().data();
    const float* sp = shift.flat<float>().data();
    float* yp = y->flat<float>().data();
    const float* wep = kExpand ? we->flat<float>().data() : nullptr;
    const float* bep = kExpand ? be->flat<float>().data() : nullptr;
    const int64_t out_rows = g.n * g.oh;
    const int64_t row_values = g.w * g.c;
    std::vector<float> row_sums(out_rows * g.c, 0.0f);
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    // With the expansion, small images are expanded whole, `group` at a time (all their rows into the
    // ring at once: the weights are read once per group instead of once per row), and split between
    // threads by group, at least two groups per thread.
    const int64_t threads = pool->NumThreads(), image_values = g.h * row_values;
    const bool images = kExpand && image_values <= kWholeImageValues && g.n >= 2 * threads;
    const int64_t group = images ? std::max<int64_t>(1, std::min(kGroupValues / image_values, g.n / (2 * threads))) : 1;
    const int64_t slots = images ? group * g.h : g.k;
    auto rows = [&](int64_t r0, int64_t r1) {
      // Input rows after act: row iy in slot iy % k (the k rows one output row reads are
      // consecutive, so they never share a slot), or with whole images in slot (n % group) * H + iy.
      // tag: which input row (n * H + iy) a slot holds.
      std::vector<float> ring(ring_rows ? slots * row_values : 0);
      std::vector<int64_t> tag(slots, -1);
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = r / g.oh, oy = r % g.oh;
        int64_t ky0, ky1;
        bias_init::TapRange(oy, g.s, g.p, g.k, g.h, &ky0, &ky1);
        const float* in[7];
        for (int64_t ky = ky0; ky < ky1; ++ky) {
          const int64_t iy = oy * g.s - g.p + ky;
          const float* src = xp + (n * g.h + iy) * g.w * cin;
          if (!ring_rows) {
            in[ky] = src;
            continue;
          }
          const int64_t at = images ? (n % group) * g.h + iy : iy % slots;
          float* slot = ring.data() + at * row_values;
          if (tag[at] != n * g.h + iy) {
            if (images) {
              const int64_t n0 = n - n % group, count = std::min(group, g.n - n0);
              ExpandSiluRow(xp + n0 * g.h * g.w * cin, wep, bep, ring.data(), count * g.h * g.w, cin, g.c);
              for (int64_t i = 0; i < count * g.h; ++i) tag[i] = n0 * g.h + i;
            } else if (kExpand) {
              ExpandSiluRow(src, wep, bep, slot, g.w, cin, g.c);
            } else {
              SiluRow(src, slot, row_values);
            }
            tag[at] = n * g.h + iy;
          }
          in[ky] = slot;
        }
        bias_init::ForwardRow(g, in, wp, yp + r * g.ow * g.c, ky0, ky1, ShiftSiluSum{sp, row_sums.data() + r * g.c});
      }
    };
    // Per output row: its sums, SiLU and mean; with the expansion, the s input rows it adds to the ring.
    const int64_t row_cost = g.ow * g.c * (g.k * g.k * 2 + 24) + (kExpand ? g.s * g.w * g.c * (cin * 2 + 24) : 0);
    if (images) {
      pool->ParallelFor((g.n + group - 1) / group, row_cost * g.oh * group,
                        [&](int64_t u0, int64_t u1) { rows(u0 * group * g.oh, std::min(u1 * group, g.n) * g.oh); });
    } else {
      pool->ParallelFor(out_rows, row_cost, rows);
    }

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
  bool input_silu_ = true;
};

}  // namespace

REGISTER_KERNEL_BUILDER(Name("BiasInitDepthwiseSilu").Device(tensorflow::DEVICE_CPU), DepthwiseSiluOp<false>);
REGISTER_KERNEL_BUILDER(Name("BiasInitExpandDepthwiseSilu").Device(tensorflow::DEVICE_CPU), DepthwiseSiluOp<true>);
