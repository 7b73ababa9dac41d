// Depthwise k x k convolution with symmetric zero padding (PyTorch's), forward and both gradients,
// as two TensorFlow ops with AVX2/FMA or AVX-512 kernels (simd.h) (docs/performance.md, item 19):
//
//   BiasInitDepthwiseConv(x [N, H, W, C], w [k, k, C, 1]) -> y [N, OH, OW, C]
//   BiasInitDepthwiseConvGrad(dy, x, w) -> dx, dw
//
// attributes stride and pad; OH = (H + 2 pad - k) / stride + 1. The layouts are TensorFlow's
// DepthwiseConv2dNative's (NHWC, HWC1 filter), so the ops replace it, its BackpropInput and its
// BackpropFilter one for one. Channels are the vector lanes (16 or 8 at a time, a scalar tail
// otherwise). The forward and dx gather each value over the window's taps in (ky, kx) order; dw sums
// over fixed blocks of output rows in float, then adds the blocks in order in double: results do not
// depend on the thread count. k is 1, 3, 5 or 7.
//
// Speed (item 26): one value at a time, each sum is a chain of fused multiply-adds that waits on
// the previous one's latency. The forward and dx compute 4 values of a row side by side where their
// windows lie inside the input, and dw its k column taps side by side, so the chains overlap and a
// filter (or dy) vector is loaded once for all of them. Every value still adds the same terms in the
// same order, so the results are bit-identical to one value at a time. B1's 23 depthwise layers at
// 240x240 batch 16 on the AMD guest: forward 52 -> 37 ms and both gradients 109 -> 87 ms (AVX-512),
// 68 -> 45 and 166 -> 118 ms (AVX2), medians (docs/performance.md, item 26, has the ranges).
// At stride 1, dx runs the forward's own row code over dy with the columns reversed
// (InputGradientRow, ForwardRow reversed; item 28), again bit-identical: the gradients ~13% less held to AVX2.
#include <algorithm>
#include <vector>

#include "depthwise_filter_grad.h"
#include "depthwise_rows.h"
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
using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;

REGISTER_OP("BiasInitDepthwiseConv")
    .Input("x: float")
    .Input("w: float")
    .Output("y: float")
    .Attr("stride: int >= 1")
    .Attr("pad: int >= 0")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->UnknownShapeOfRank(4));
      return absl::OkStatus();
    });

REGISTER_OP("BiasInitDepthwiseConvGrad")
    .Input("dy: float")
    .Input("x: float")
    .Input("w: float")
    .Output("dx: float")
    .Output("dw: float")
    .Attr("stride: int >= 1")
    .Attr("pad: int >= 0")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(2));
      return absl::OkStatus();
    });

namespace {

using bias_init::ForVectors;
using bias_init::Geometry;
using bias_init::kOutputGroup;
using bias_init::ReadGeometry;
using bias_init::TapRange;

// For each input index i along one axis: the pairs (tap t, output o) with o * s - p + t = i, t in [0, k), o in [0, size_out).
std::vector<std::vector<int64_t>> CoveringTaps(int64_t size_in, int64_t size_out, int64_t k, int64_t s, int64_t p) {
  std::vector<std::vector<int64_t>> taps(size_in);
  for (int64_t o = 0; o < size_out; ++o) {
    for (int64_t t = 0; t < k; ++t) {
      const int64_t i = o * s - p + t;
      if (i >= 0 && i < size_in) taps[i].insert(taps[i].end(), {t, o});
    }
  }
  // In tap order, as the forward sums (the loop above adds them by output).
  for (auto& v : taps) {
    std::vector<std::pair<int64_t, int64_t>> pairs;
    for (size_t j = 0; j < v.size(); j += 2) pairs.emplace_back(v[j], v[j + 1]);
    std::sort(pairs.begin(), pairs.end());
    v.clear();
    for (const auto& [t, o] : pairs) v.insert(v.end(), {t, o});
  }
  return taps;
}

// dx as groups of input columns: (ix, kOutputGroup) for the columns ix, ix + s, ... that the same
// taps reach from consecutive outputs (tx[ix + j s] is tx[ix] with each output index + j), (ix, 1)
// for the others; every column once.
std::vector<std::pair<int64_t, int>> InputGroups(const std::vector<std::vector<int64_t>>& tx, int64_t s) {
  const int64_t w = static_cast<int64_t>(tx.size());
  std::vector<bool> done(w, false);
  std::vector<std::pair<int64_t, int>> groups;
  for (int64_t ix = 0; ix < w; ++ix) {
    if (done[ix]) continue;
    bool together = ix + (kOutputGroup - 1) * s < w;
    for (int j = 1; together && j < kOutputGroup; ++j) {
      const std::vector<int64_t>& a = tx[ix];
      const std::vector<int64_t>& b = tx[ix + j * s];
      together = !done[ix + j * s] && a.size() == b.size();
      for (size_t t = 0; together && t < a.size(); t += 2) together = b[t] == a[t] && b[t + 1] == a[t + 1] + j;
    }
    const int count = together ? kOutputGroup : 1;
    for (int j = 0; j < count; ++j) done[ix + j * s] = true;
    groups.emplace_back(ix, count);
  }
  return groups;
}

// dx at the input columns ix, ix + s, ..., ix + (G - 1) s of input row (n, iy): each gathers dy over
// the (tap, output) pairs ly x lx (those of column ix, outputs + j for column j), in that order,
// from zero; G columns side by side share each filter load, as ForwardOutputs does.
template <int G>
void InputGradients(const Geometry& g, const float* dyp, const float* wp, float* dxp, int64_t n, int64_t iy, const std::vector<int64_t>& ly,
                    const std::vector<int64_t>& lx, int64_t ix) {
  float* out = dxp + ((n * g.h + iy) * g.w + ix) * g.c;
  const int64_t step = g.s * g.c;  // from one column of the group to the next
  int64_t c = ForVectors(g.c, [&](auto f, int64_t c) {
    using F = decltype(f);
    typename F::V acc[G];
    for (int j = 0; j < G; ++j) acc[j] = F::Zero();
    for (size_t a = 0; a < ly.size(); a += 2) {
      const float* dyrow = dyp + (n * g.oh + ly[a + 1]) * g.ow * g.c + c;
      const float* wrow = wp + ly[a] * g.k * g.c + c;
      for (size_t b = 0; b < lx.size(); b += 2) {
        const typename F::V wv = F::Load(wrow + lx[b] * g.c);
        const float* d = dyrow + lx[b + 1] * g.c;
        for (int j = 0; j < G; ++j) acc[j] = F::Fma(F::Load(d + j * g.c), wv, acc[j]);
      }
    }
    for (int j = 0; j < G; ++j) F::Store(out + j * step + c, acc[j]);
  });
  for (; c < g.c; ++c) {
    for (int j = 0; j < G; ++j) {
      float acc = 0;
      for (size_t a = 0; a < ly.size(); a += 2)
        for (size_t b = 0; b < lx.size(); b += 2)
          acc = std::fma(dyp[((n * g.oh + ly[a + 1]) * g.ow + lx[b + 1] + j) * g.c + c], wp[(ly[a] * g.k + lx[b]) * g.c + c], acc);
      out[j * step + c] = acc;
    }
  }
}

class DepthwiseConvOp : public OpKernel {
 public:
  explicit DepthwiseConvOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("stride", &stride_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("pad", &pad_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& w = ctx->input(1);
    Geometry g;
    OP_REQUIRES_OK(ctx, ReadGeometry(x, w, stride_, pad_, &g));
    Tensor* y;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({g.n, g.oh, g.ow, g.c}), &y));
    const float* xp = x.flat<float>().data();
    const float* wp = w.flat<float>().data();
    float* yp = y->flat<float>().data();
    auto rows = [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = r / g.oh, oy = r % g.oh;
        int64_t ky0, ky1;
        TapRange(oy, g.s, g.p, g.k, g.h, &ky0, &ky1);
        const float* in[7];
        for (int64_t ky = ky0; ky < ky1; ++ky) in[ky] = xp + (n * g.h + oy * g.s - g.p + ky) * g.w * g.c;
        bias_init::ForwardRow(g, in, wp, yp + r * g.ow * g.c, ky0, ky1, bias_init::StoreOutputs{});
      }
    };
    bias_init::ParallelUnits(ctx, g.n * g.oh, g.ow * g.c * g.k * g.k * 2, rows);
  }

 private:
  int64_t stride_, pad_;
};

class DepthwiseConvGradOp : public OpKernel {
 public:
  explicit DepthwiseConvGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("stride", &stride_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("pad", &pad_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& x = ctx->input(1);
    const Tensor& w = ctx->input(2);
    Geometry g;
    OP_REQUIRES_OK(ctx, ReadGeometry(x, w, stride_, pad_, &g));
    OP_REQUIRES(ctx, dy.shape() == TensorShape({g.n, g.oh, g.ow, g.c}),
                tensorflow::errors::InvalidArgument("dy must be [", g.n, ", ", g.oh, ", ", g.ow, ", ", g.c, "], got ", dy.shape().DebugString()));
    Tensor *dx, *dw;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, w.shape(), &dw));
    const float* dyp = dy.flat<float>().data();
    const float* xp = x.flat<float>().data();
    const float* wp = w.flat<float>().data();
    float* dxp = dx->flat<float>().data();

    // dx: each input value gathers dy over the outputs whose window covers it. At stride 1 a row
    // at a time as the forward computes one (InputGradientRow); otherwise per input row and column,
    // with the (tap, output index) pairs that reach it, computed once.
    const int64_t cost = g.w * g.c * g.k * g.k * 2 / (g.s * g.s);
    if (g.s == 1) {
      bias_init::ParallelUnits(ctx, g.n * g.h, cost, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) bias_init::InputGradientRow(g, dyp, wp, dxp, r / g.h, r % g.h);
      });
    } else {
      const std::vector<std::vector<int64_t>> ty = CoveringTaps(g.h, g.oh, g.k, g.s, g.p), tx = CoveringTaps(g.w, g.ow, g.k, g.s, g.p);
      const std::vector<std::pair<int64_t, int>> groups = InputGroups(tx, g.s);
      bias_init::ParallelUnits(ctx, g.n * g.h, cost, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t n = r / g.h, iy = r % g.h;
          for (const auto& [ix, count] : groups) {
            if (count == kOutputGroup) {
              InputGradients<kOutputGroup>(g, dyp, wp, dxp, n, iy, ty[iy], tx[ix], ix);
            } else {
              InputGradients<1>(g, dyp, wp, dxp, n, iy, ty[iy], tx[ix], ix);
            }
          }
        }
      });
    }

    // dw (depthwise_filter_grad.h).
    bias_init::FilterGradient(ctx, g, dyp, xp, dw->flat<float>().data());
  }

 private:
  int64_t stride_, pad_;
};

REGISTER_KERNEL_BUILDER(Name("BiasInitDepthwiseConv").Device(tensorflow::DEVICE_CPU), DepthwiseConvOp);
REGISTER_KERNEL_BUILDER(Name("BiasInitDepthwiseConvGrad").Device(tensorflow::DEVICE_CPU), DepthwiseConvGradOp);

}  // namespace
