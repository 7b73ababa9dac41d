// The depthwise convolution's forward over one output row, shared by the training op
// (depthwise_conv.cc: BiasInitDepthwiseConv) and the evaluation op (depthwise_eval.cc:
// BiasInitDepthwiseSilu), which differ only in where the input rows live and in what happens to
// each output sum (stored as it is, or shifted, SiLU'd and summed for squeeze-excitation).
#ifndef BIAS_INIT_DEPTHWISE_ROWS_H_
#define BIAS_INIT_DEPTHWISE_ROWS_H_

#include <algorithm>
#include <cstdint>

#include "simd.h"

#include "tensorflow/core/framework/op_kernel.h"

namespace bias_init {

constexpr int kOutputGroup = 4;  // forward outputs (and dx values) computed side by side

struct Geometry {
  int64_t n, h, w, c, k, s, p, oh, ow;
};

// An input [N, H, W, C] (x's shape, or channels c in place of x's last dimension) and w [k, k, C, 1]
// with stride s and padding p; k is 1, 3, 5 or 7.
inline absl::Status ReadGeometry(const tensorflow::Tensor& x, const tensorflow::Tensor& w, int64_t s, int64_t p, Geometry* g, int64_t c = -1) {
  if (x.dims() != 4) return tensorflow::errors::InvalidArgument("x must be NHWC, got ", x.shape().DebugString());
  if (c < 0) c = x.dim_size(3);
  if (w.dims() != 4 || w.dim_size(0) != w.dim_size(1) || w.dim_size(2) != c || w.dim_size(3) != 1) {
    return tensorflow::errors::InvalidArgument("w must be [k, k, ", c, ", 1], got ", w.shape().DebugString());
  }
  *g = {x.dim_size(0), x.dim_size(1), x.dim_size(2), c, w.dim_size(0), s, p, 0, 0};
  if (g->k != 1 && g->k != 3 && g->k != 5 && g->k != 7) return tensorflow::errors::InvalidArgument("kernel size must be 1, 3, 5 or 7, got ", g->k);
  if (g->h + 2 * p < g->k || g->w + 2 * p < g->k) return tensorflow::errors::InvalidArgument("input smaller than the window");
  g->oh = (g->h + 2 * p - g->k) / s + 1;
  g->ow = (g->w + 2 * p - g->k) / s + 1;
  return absl::OkStatus();
}

// The taps of a window along one axis that land inside the input: [lo, hi) for output index o, whose
// tap t reads input index o * s - p + t, or with kDir = -1 (stride 1) o + p - t (ForwardOutputs).
template <int kDir = 1>
inline void TapRange(int64_t o, int64_t s, int64_t p, int64_t k, int64_t size, int64_t* lo, int64_t* hi) {
  if (kDir > 0) {
    const int64_t start = o * s - p;
    *lo = std::max<int64_t>(0, -start);
    *hi = std::min<int64_t>(k, size - start);
  } else {
    *lo = std::max<int64_t>(0, o + p - size + 1);
    *hi = std::min<int64_t>(k, o + p + 1);
  }
}

// What the forward does with each output's sum: store it (the training op). kVectors: how many
// channel vectors ForwardOutputs may take at a time with this finish (item 40: two where finish is
// a store; one for evaluation's SiLU + sum, which two made 14% slower held to AVX2).
struct StoreOutputs {
  static constexpr int kVectors = 2;
  template <typename F>
  void Vector(typename F::V sum, float* out, int64_t c) const { F::Store(out + c, sum); }
  void One(float sum, float* out, int64_t c) const { out[c] = sum; }
};

// The sums of G outputs (dst, dst + C, ...) for M channel vectors from c (ForwardOutputs): each
// filter vector is loaded once for the G outputs, and the G x M chains of fused multiply-adds run
// side by side; each sum adds its taps in (ky, kx) order from zero.
template <typename F, int G, int M, typename Finish, int kDir>
inline void ForwardVectors(const Geometry& g, const float* const* rows, const float* wp, float* dst, int64_t first, int64_t step, int64_t ky0,
                           int64_t ky1, int64_t kx0, int64_t kx1, const Finish& finish, int64_t c) {
  constexpr int64_t W = F::kWidth;
  // Sum j of vector m at [m * G + j]: one-dimensional, as acc[M][G] left a sum on the stack in
  // evaluation's SiLU loop (GCC 12, AVX2; 16% slower than item 26's acc[G]).
  typename F::V acc[M * G];
  for (int i = 0; i < M * G; ++i) acc[i] = F::Zero();
  for (int64_t ky = ky0; ky < ky1; ++ky) {
    const float* in = rows[ky] + first + c;
    for (int64_t kx = kx0; kx < kx1; ++kx) {
      const float* tap = in + kDir * kx * g.c;
      for (int m = 0; m < M; ++m) {
        const typename F::V wv = F::Load(wp + (ky * g.k + kx) * g.c + c + m * W);
        for (int j = 0; j < G; ++j) acc[m * G + j] = F::Fma(F::Load(tap + j * step + m * W), wv, acc[m * G + j]);
      }
    }
  }
  for (int m = 0; m < M; ++m)
    for (int j = 0; j < G; ++j) finish.template Vector<F>(acc[m * G + j], dst + j * g.c, c + m * W);
}

// Outputs ox .. ox + G - 1 of an output row whose windows all take the taps [ky0, ky1) x [kx0, kx1);
// rows[ky] is input row (oy * s - p + ky) from column 0, out the output row from column 0. Each
// output sums its taps in (ky, kx) order from zero. G outputs side by side share each filter load
// and give G independent chains of fused multiply-adds (one output at a time waited on each
// product's latency); the sums are those of one output at a time, bit for bit. Channel vectors go
// two at a time where Finish::kVectors allows (item 40: 2G chains, and each loaded line used whole
// at 8 floats), then one at a time, then a scalar tail. finish gets each lane's sums in output order.
// With kDir = -1 (stride 1 only), tap kx of output ox reads column ox + p - kx instead of
// ox * s - p + kx: the input gradient as a forward over dy (depthwise_conv.cc InputGradientRow).
template <int G, typename Finish, int kDir = 1>
void ForwardOutputs(const Geometry& g, const float* const* rows, const float* wp, float* out, int64_t ox, int64_t ky0, int64_t ky1,
                    int64_t kx0, int64_t kx1, const Finish& finish) {
  // tap 0 of output ox, from a row's column 0 (maybe outside)
  const int64_t first = (kDir > 0 ? ox * g.s - g.p : ox + g.p) * g.c;
  const int64_t step = g.s * g.c;                // from one output's window to the next
  float* dst = out + ox * g.c;
  constexpr bool kPairs = Finish::kVectors == 2;
  int64_t c = ForVectorGroups<kPairs, kPairs>(g.c, [&](auto f, auto m, int64_t v) {
    ForwardVectors<decltype(f), G, decltype(m)::value, Finish, kDir>(g, rows, wp, dst, first, step, ky0, ky1, kx0, kx1, finish, v);
  });
  for (; c < g.c; ++c) {
    for (int j = 0; j < G; ++j) {
      float acc = 0;
      for (int64_t ky = ky0; ky < ky1; ++ky)
        for (int64_t kx = kx0; kx < kx1; ++kx) acc = std::fma(rows[ky][first + kDir * kx * g.c + j * step + c], wp[(ky * g.k + kx) * g.c + c], acc);
      finish.One(acc, dst + j * g.c, c);
    }
  }
}

// One output row (taps [ky0, ky1) along y, rows as ForwardOutputs takes them), or its outputs
// [x0, x1): kOutputGroup outputs at a time where their windows lie inside the input row, one at a
// time at the edges (each output's sum is the same either way). kDir as ForwardOutputs'; g's w is
// then the width of the row read and ow that of the row written.
template <typename Finish, int kDir = 1>
void ForwardRow(const Geometry& g, const float* const* rows, const float* wp, float* out, int64_t ky0, int64_t ky1, const Finish& finish,
                int64_t x0 = 0, int64_t x1 = -1) {
  if (x1 < 0) x1 = g.ow;
  // Outputs whose window lies inside the input row: [in0, in1).
  int64_t in0, in1;
  if (kDir > 0) {
    in0 = (g.p + g.s - 1) / g.s;
    in1 = g.w - g.k + g.p < 0 ? in0 : std::max(in0, std::min(g.ow, (g.w - g.k + g.p) / g.s + 1));
  } else {
    in0 = std::max<int64_t>(0, g.k - 1 - g.p);
    in1 = std::max(in0, std::min(g.ow, g.w - g.p));
  }
  for (int64_t ox = x0; ox < x1;) {
    if (ox >= in0 && ox + kOutputGroup <= std::min(in1, x1)) {
      ForwardOutputs<kOutputGroup, Finish, kDir>(g, rows, wp, out, ox, ky0, ky1, 0, g.k, finish);
      ox += kOutputGroup;
    } else {
      int64_t kx0, kx1;
      TapRange<kDir>(ox, g.s, g.p, g.k, g.w, &kx0, &kx1);
      ForwardOutputs<1, Finish, kDir>(g, rows, wp, out, ox, ky0, ky1, kx0, kx1, finish);
      ox += 1;
    }
  }
}

// dx of input row (n, iy) at stride 1, or its values [x0, x1), as the forward computes an output
// row: value ix gathers dy[oy, ox] * w[ky, kx] with oy = iy + p - ky, ox = ix + p - kx over the
// taps that land inside dy, in (ky, kx) order from zero, as depthwise_conv.cc's InputGradients does
// (bit-identical), with the forward's direct addressing instead of its (tap, output) lists.
// ForwardRow reversed (kDir = -1) over the geometry with input and output swapped: dy [N, OH, OW, C]
// is read; finish gets dx's values at their place in dx [N, H, W, C] (StoreOutputs writes them there).
template <typename Finish = StoreOutputs>
void InputGradientRow(const Geometry& g, const float* dyp, const float* wp, float* dxp, int64_t n, int64_t iy, const Finish& finish = Finish{},
                      int64_t x0 = 0, int64_t x1 = -1) {
  const Geometry swapped = {g.n, g.oh, g.ow, g.c, g.k, 1, g.p, g.h, g.w};
  int64_t ky0, ky1;
  TapRange<-1>(iy, 1, g.p, g.k, g.oh, &ky0, &ky1);
  const float* rows[7];
  for (int64_t ky = ky0; ky < ky1; ++ky) rows[ky] = dyp + (n * g.oh + iy + g.p - ky) * g.ow * g.c;
  ForwardRow<Finish, -1>(swapped, rows, wp, dxp + (n * g.h + iy) * g.w * g.c, ky0, ky1, finish, x0, x1);
}

}  // namespace bias_init

#endif  // BIAS_INIT_DEPTHWISE_ROWS_H_
