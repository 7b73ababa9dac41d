// The depthwise convolution's filter gradient, shared by depthwise_conv.cc's
// BiasInitDepthwiseConvGrad and batchnorm_depthwise.cc's fused op: dw[ky, kx, c] = the sum over
// outputs of dy * x at the tap, in float per block of kFilterBlockRows output rows (FilterRowSums),
// then the blocks in order in double, so results do not depend on the thread count.
#ifndef BIAS_INIT_DEPTHWISE_FILTER_GRAD_H_
#define BIAS_INIT_DEPTHWISE_FILTER_GRAD_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "depthwise_rows.h"
#include "parallel.h"
#include "simd.h"

#include "tensorflow/core/framework/op_kernel.h"

namespace bias_init {

constexpr int64_t kFilterBlockRows = 8;  // output rows per dw summing block

// The K sums of M channel vectors at c for one output row (FilterRowSums): the K x M chains run side
// by side, dy is loaded once per output and each loaded line is used whole (M = 2 covers 64 bytes
// at 8 floats), and each sum adds its terms in ascending ox from zero, then into aw.
template <typename F, int K, int M>
inline void FilterVectorSums(const Geometry& g, const float* dyrow, const float* xrow, float* aw, int64_t c) {
  constexpr int64_t W = F::kWidth;
  // Sum kx of vector m at [m * K + kx]: one-dimensional, as ForwardVectors keeps its sums.
  typename F::V acc[M * K];
  for (int i = 0; i < M * K; ++i) acc[i] = F::Zero();
  for (int64_t ox = 0; ox < g.ow; ++ox) {
    const int64_t start = ox * g.s - g.p;
    typename F::V d[M];
    for (int m = 0; m < M; ++m) d[m] = F::Load(dyrow + ox * g.c + c + m * W);
    if (start >= 0 && start + K <= g.w) {
      const float* in = xrow + start * g.c + c;
      for (int kx = 0; kx < K; ++kx)
        for (int m = 0; m < M; ++m) acc[m * K + kx] = F::Fma(d[m], F::Load(in + kx * g.c + m * W), acc[m * K + kx]);
    } else {
      for (int kx = 0; kx < K; ++kx) {
        if (start + kx < 0 || start + kx >= g.w) continue;
        for (int m = 0; m < M; ++m) acc[m * K + kx] = F::Fma(d[m], F::Load(xrow + (start + kx) * g.c + c + m * W), acc[m * K + kx]);
      }
    }
  }
  for (int m = 0; m < M; ++m)
    for (int kx = 0; kx < K; ++kx) F::Store(aw + kx * g.c + c + m * W, F::Add(F::Load(aw + kx * g.c + c + m * W), acc[m * K + kx]));
}

// One output row's terms of dw for filter row ky: aw[kx, c] += sum over the outputs ox whose tap kx
// lands inside the input row (ascending ox) of dy[ox, c] * x[ox * s - p + kx, c]. Channel vectors go
// two at a time where the registers hold their 2K sums (item 40: one at a time, the loop walked the
// rows at a stride of C floats using half of each line it loaded and waited on the second-level
// cache), then one at a time, then a scalar tail; which grouping a lane falls in never changes its sum.
template <int K>
void FilterRowSums(const Geometry& g, const float* dyrow, const float* xrow, float* aw) {
  constexpr bool kPairs8 = K <= 5;  // 2K sums + 2 dy vectors in AVX2's 16 registers
  int64_t c = ForVectorGroups<true, kPairs8>(g.c, [&](auto f, auto m, int64_t v) {
    FilterVectorSums<decltype(f), K, decltype(m)::value>(g, dyrow, xrow, aw, v);
  });
  for (; c < g.c; ++c) {
    for (int kx = 0; kx < K; ++kx) {
      float acc = 0;
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        const int64_t i = ox * g.s - g.p + kx;
        if (i >= 0 && i < g.w) acc = std::fma(dyrow[ox * g.c + c], xrow[i * g.c + c], acc);
      }
      aw[kx * g.c + c] += acc;
    }
  }
}

// dw [k, k, C, 1] of dy [N, OH, OW, C] and x [N, H, W, C], on TensorFlow's intra-op pool.
inline void FilterGradient(tensorflow::OpKernelContext* ctx, const Geometry& g, const float* dyp, const float* xp, float* dwp) {
  const int64_t out_rows = g.n * g.oh;
  const int64_t blocks = (out_rows + kFilterBlockRows - 1) / kFilterBlockRows;
  const int64_t taps = g.k * g.k * g.c;
  // Each block's sums are zeroed by the thread that fills them, and the blocks are added per tap
  // in block order with the taps split over the pool (SumBlocksByColumn): no serial pass over them.
  std::unique_ptr<float[]> partial(new float[blocks * taps]);
  ParallelUnits(ctx, blocks, kFilterBlockRows * g.ow * taps * 2, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      float* acc_w = partial.get() + b * taps;
      std::fill(acc_w, acc_w + taps, 0.0f);
      for (int64_t r = b * kFilterBlockRows, end = std::min(out_rows, r + kFilterBlockRows); r < end; ++r) {
        const int64_t n = r / g.oh, oy = r % g.oh;
        int64_t ky0, ky1;
        TapRange(oy, g.s, g.p, g.k, g.h, &ky0, &ky1);
        const float* dyrow = dyp + r * g.ow * g.c;
        for (int64_t ky = ky0; ky < ky1; ++ky) {
          const float* xrow = xp + (n * g.h + oy * g.s - g.p + ky) * g.w * g.c;
          float* aw = acc_w + ky * g.k * g.c;
          switch (g.k) {
            case 1: FilterRowSums<1>(g, dyrow, xrow, aw); break;
            case 3: FilterRowSums<3>(g, dyrow, xrow, aw); break;
            case 5: FilterRowSums<5>(g, dyrow, xrow, aw); break;
            default: FilterRowSums<7>(g, dyrow, xrow, aw); break;
          }
        }
      }
    }
  });
  const std::vector<double> sum = SumBlocksByColumn(ctx, partial.get(), blocks, taps);
  for (int64_t i = 0; i < taps; ++i) dwp[i] = static_cast<float>(sum[i]);
}

}  // namespace bias_init

#endif  // BIAS_INIT_DEPTHWISE_FILTER_GRAD_H_
