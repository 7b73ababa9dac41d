// Depthwise k x k convolution with symmetric zero padding (PyTorch's), forward and both gradients,
// as two TensorFlow ops with AVX2/FMA or AVX-512 kernels (simd.h) (docs/performance.md, item 19):
//
//   BiasInitDepthwiseConv(x [N, H, W, C], w [k, k, C, 1]) -> y [N, OH, OW, C]
//   BiasInitDepthwiseConvGrad(dy, x, w) -> dx, dw
//
// attributes stride and pad; OH = (H + 2 pad - k) / stride + 1. The layouts are TensorFlow's
// DepthwiseConv2dNative's (NHWC, HWC1 filter), so the ops replace it, its BackpropInput and its
// BackpropFilter one for one. Channels are the vector lanes (8 at a time, a scalar tail otherwise).
// The forward and dx gather, one output value at a time, over the window's taps in (ky, kx) order;
// dw sums over fixed blocks of output rows in float, then adds the blocks in order in double:
// results do not depend on the thread count.
#include <algorithm>
#include <vector>

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

constexpr int64_t kFilterBlockRows = 8;  // output rows per dw summing block

struct Geometry {
  int64_t n, h, w, c, k, s, p, oh, ow;
};

absl::Status ReadGeometry(const Tensor& x, const Tensor& w, int64_t s, int64_t p, Geometry* g) {
  if (x.dims() != 4) return tensorflow::errors::InvalidArgument("x must be NHWC, got ", x.shape().DebugString());
  if (w.dims() != 4 || w.dim_size(0) != w.dim_size(1) || w.dim_size(2) != x.dim_size(3) || w.dim_size(3) != 1) {
    return tensorflow::errors::InvalidArgument("w must be [k, k, ", x.dim_size(3), ", 1], got ", w.shape().DebugString());
  }
  *g = {x.dim_size(0), x.dim_size(1), x.dim_size(2), x.dim_size(3), w.dim_size(0), s, p, 0, 0};
  if (g->h + 2 * p < g->k || g->w + 2 * p < g->k) return tensorflow::errors::InvalidArgument("input smaller than the window");
  g->oh = (g->h + 2 * p - g->k) / s + 1;
  g->ow = (g->w + 2 * p - g->k) / s + 1;
  return absl::OkStatus();
}

// The taps of a window along one axis that land inside the input: [lo, hi) for output index o.
inline void TapRange(int64_t o, int64_t s, int64_t p, int64_t k, int64_t size, int64_t* lo, int64_t* hi) {
  const int64_t start = o * s - p;
  *lo = std::max<int64_t>(0, -start);
  *hi = std::min<int64_t>(k, size - start);
}

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
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          int64_t kx0, kx1;
          TapRange(ox, g.s, g.p, g.k, g.w, &kx0, &kx1);
          float* out = yp + ((n * g.oh + oy) * g.ow + ox) * g.c;
          const float* in = xp + ((n * g.h + oy * g.s - g.p) * g.w + ox * g.s - g.p) * g.c;  // tap (0, 0), maybe outside
          int64_t c = ForVectors(g.c, [&](auto f, int64_t c) {
            using F = decltype(f);
            typename F::V acc = F::Zero();
            for (int64_t ky = ky0; ky < ky1; ++ky) {
              for (int64_t kx = kx0; kx < kx1; ++kx) {
                acc = F::Fma(F::Load(in + (ky * g.w + kx) * g.c + c), F::Load(wp + (ky * g.k + kx) * g.c + c), acc);
              }
            }
            F::Store(out + c, acc);
          });
          for (; c < g.c; ++c) {
            float acc = 0;
            for (int64_t ky = ky0; ky < ky1; ++ky)
              for (int64_t kx = kx0; kx < kx1; ++kx) acc = std::fma(in[(ky * g.w + kx) * g.c + c], wp[(ky * g.k + kx) * g.c + c], acc);
            out[c] = acc;
          }
        }
      }
    };
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    pool->ParallelFor(g.n * g.oh, g.ow * g.c * g.k * g.k * 2, rows);
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
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;

    // dx: each input value gathers dy over the outputs whose window covers it. Per input row and
    // column, the (tap, output index) pairs that reach it, computed once.
    const std::vector<std::vector<int64_t>> ty = CoveringTaps(g.h, g.oh, g.k, g.s, g.p), tx = CoveringTaps(g.w, g.ow, g.k, g.s, g.p);
    pool->ParallelFor(g.n * g.h, g.w * g.c * g.k * g.k * 2 / (g.s * g.s), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = r / g.h, iy = r % g.h;
        const std::vector<int64_t>& ly = ty[iy];
        for (int64_t ix = 0; ix < g.w; ++ix) {
          const std::vector<int64_t>& lx = tx[ix];
          float* out = dxp + ((n * g.h + iy) * g.w + ix) * g.c;
          int64_t c = ForVectors(g.c, [&](auto f, int64_t c) {
            using F = decltype(f);
            typename F::V acc = F::Zero();
            for (size_t a = 0; a < ly.size(); a += 2) {
              const float* dyrow = dyp + (n * g.oh + ly[a + 1]) * g.ow * g.c + c;
              const float* wrow = wp + ly[a] * g.k * g.c + c;
              for (size_t b = 0; b < lx.size(); b += 2) {
                acc = F::Fma(F::Load(dyrow + lx[b + 1] * g.c), F::Load(wrow + lx[b] * g.c), acc);
              }
            }
            F::Store(out + c, acc);
          });
          for (; c < g.c; ++c) {
            float acc = 0;
            for (size_t a = 0; a < ly.size(); a += 2)
              for (size_t b = 0; b < lx.size(); b += 2)
                acc = std::fma(dyp[((n * g.oh + ly[a + 1]) * g.ow + lx[b + 1]) * g.c + c], wp[(ly[a] * g.k + lx[b]) * g.c + c], acc);
            out[c] = acc;
          }
        }
      }
    });

    // dw[ky, kx, c] = sum over outputs of dy * x at the tap: float sums per block of output rows,
    // then the blocks in order in double.
    const int64_t out_rows = g.n * g.oh;
    const int64_t blocks = (out_rows + kFilterBlockRows - 1) / kFilterBlockRows;
    const int64_t taps = g.k * g.k * g.c;
    std::vector<float> partial(blocks * taps, 0.0f);
    pool->ParallelFor(blocks, kFilterBlockRows * g.ow * taps * 2, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        float* acc_w = partial.data() + b * taps;
        for (int64_t r = b * kFilterBlockRows, end = std::min(out_rows, r + kFilterBlockRows); r < end; ++r) {
          const int64_t n = r / g.oh, oy = r % g.oh;
          int64_t ky0, ky1;
          TapRange(oy, g.s, g.p, g.k, g.h, &ky0, &ky1);
          const float* dyrow = dyp + r * g.ow * g.c;
          for (int64_t ky = ky0; ky < ky1; ++ky) {
            const float* xrow = xp + (n * g.h + oy * g.s - g.p + ky) * g.w * g.c;
            for (int64_t kx = 0; kx < g.k; ++kx) {
              // Outputs whose tap kx lands inside the row: ox * s - p + kx in [0, W).
              const int64_t ox0 = std::max<int64_t>(0, (g.p - kx + g.s - 1) / g.s);
              const int64_t last = g.w - 1 + g.p - kx;  // ox * s <= last
              const int64_t ox1 = last < 0 ? 0 : std::min<int64_t>(g.ow, last / g.s + 1);
              float* aw = acc_w + (ky * g.k + kx) * g.c;
              int64_t c = ForVectors(g.c, [&](auto f, int64_t c) {
                using F = decltype(f);
                typename F::V acc = F::Zero();
                for (int64_t ox = ox0; ox < ox1; ++ox) {
                  acc = F::Fma(F::Load(dyrow + ox * g.c + c), F::Load(xrow + (ox * g.s - g.p + kx) * g.c + c), acc);
                }
                F::Store(aw + c, F::Add(F::Load(aw + c), acc));
              });
              for (; c < g.c; ++c) {
                float acc = 0;
                for (int64_t ox = ox0; ox < ox1; ++ox) acc = std::fma(dyrow[ox * g.c + c], xrow[(ox * g.s - g.p + kx) * g.c + c], acc);
                aw[c] += acc;
              }
            }
          }
        }
      }
    });
    std::vector<double> sum(taps, 0.0);
    for (int64_t b = 0; b < blocks; ++b) {
      const float* pb = partial.data() + b * taps;
      for (int64_t i = 0; i < taps; ++i) sum[i] += pb[i];
    }
    float* dwp = dw->flat<float>().data();
    for (int64_t i = 0; i < taps; ++i) dwp[i] = static_cast<float>(sum[i]);
  }

 private:
  int64_t stride_, pad_;
};

REGISTER_KERNEL_BUILDER(Name("BiasInitDepthwiseConv").Device(tensorflow::DEVICE_CPU), DepthwiseConvOp);
REGISTER_KERNEL_BUILDER(Name("BiasInitDepthwiseConvGrad").Device(tensorflow::DEVICE_CPU), DepthwiseConvGradOp);

}  // namespace
