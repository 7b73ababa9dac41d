// The training BatchNorm ops' shared pieces (batchnorm_act.cc): rows summed in fixed blocks on
// TensorFlow's pool, the apply pass y = act((x - mean) * a + beta) that the forward and
// BiasInitBatchNormActApply share (so a recomputed y is bit-identical), and input checks.
#ifndef BIAS_INIT_BATCHNORM_ROWS_H_
#define BIAS_INIT_BATCHNORM_ROWS_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "parallel.h"
#include "simd.h"

#include "tensorflow/core/framework/op_kernel.h"

namespace bias_init {

constexpr int64_t kBlockRows = 64;  // rows per summing block (fixed: results do not depend on threads)

// Runs fn(block_begin, block_end) over blocks of kBlockRows rows on TensorFlow's intra-op pool (parallel.h).
template <typename Fn>
inline void ForBlocks(tensorflow::OpKernelContext* ctx, int64_t rows, int64_t channels, int64_t flops_per_value, Fn fn) {
  ParallelUnits(ctx, (rows + kBlockRows - 1) / kBlockRows, kBlockRows * channels * flops_per_value, fn);
}

// y = act((x - mean) * a + beta) for `count` rows of [rows, channels] from row (x) and out (y).
inline void ApplyRows(const float* row, float* out, int64_t count, int64_t channels, const float* m, const float* a, const float* beta, bool act) {
  for (int64_t r = 0; r < count; ++r, row += channels, out += channels) {
    int64_t c = bias_init::ForVectors(channels, [&](auto f, int64_t c) {
      using F = decltype(f);
      const typename F::V xc = F::Sub(F::Load(row + c), F::Load(m + c));
      typename F::V z = F::Fma(xc, F::Load(a + c), F::Load(beta + c));
      if (act) z = bias_init::Silu<F>(z);
      F::Store(out + c, z);
    });
    for (; c < channels; ++c) {
      const float z = std::fma(row[c] - m[c], a[c], beta[c]);
      out[c] = act ? bias_init::Silu1(z) : z;
    }
  }
}

// y = act((x - mean) * a + beta) over [rows, channels]: the forward's second pass, and all of
// BiasInitBatchNormActApply (the same code, ApplyRows, as batchnorm_depthwise.cc's ring and
// backward pass use, so a recomputed y is bit-identical to the forward's).
inline void ApplyBatchNormAct(tensorflow::OpKernelContext* ctx, const float* xp, float* yp, int64_t rows, int64_t channels, const float* m,
                       const float* a, const float* beta, bool act) {
  ForBlocks(ctx, rows, channels, act ? 24 : 2, [&](int64_t b0, int64_t b1) {
    const int64_t r = b0 * kBlockRows, end = std::min(rows, b1 * kBlockRows);
    ApplyRows(xp + r * channels, yp + r * channels, end - r, channels, m, a, beta, act);
  });
}

// Per-block sums [blocks][2][channels] in double. Each block's two rows are zeroed by the thread
// that fills them (Start), so no thread clears the whole array before the parallel pass.
class BlockSums {
 public:
  BlockSums(int64_t rows, int64_t channels)
      : blocks_((rows + kBlockRows - 1) / kBlockRows), channels_(channels), data_(new double[blocks_ * 2 * channels]) {}

  // Block b's sums (then its second sums at + channels), zeroed.
  double* Start(int64_t b) {
    double* p = data_.get() + b * 2 * channels_;
    std::fill(p, p + 2 * channels_, 0.0);
    return p;
  }

  // The blocks' sums per channel in block order (parallel.h SumBlocksByColumn): the first sums at
  // [c], the second at [channels + c].
  std::vector<double> Reduce(tensorflow::OpKernelContext* ctx) const { return SumBlocksByColumn(ctx, data_.get(), blocks_, 2 * channels_); }

 private:
  int64_t blocks_, channels_;
  std::unique_ptr<double[]> data_;
};

inline absl::Status CheckInputs(const tensorflow::Tensor& x, const std::vector<const tensorflow::Tensor*>& per_channel) {
  if (x.dims() < 2) return tensorflow::errors::InvalidArgument("x must have a channel axis, got ", x.shape().DebugString());
  const int64_t channels = x.dim_size(x.dims() - 1);
  for (const tensorflow::Tensor* t : per_channel) {
    if (t->dims() != 1 || t->dim_size(0) != channels) {
      return tensorflow::errors::InvalidArgument("per-channel input must be [", channels, "], got ", t->shape().DebugString());
    }
  }
  return absl::OkStatus();
}

// The forward's pass 1 of BiasInitBatchNormAct (and of batchnorm_depthwise.cc's fused op), whose
// inputs 0-4 are x, gamma, beta, running_mean, running_var and outputs 1-4 new_running_mean,
// new_running_var, mean, invstd: sums of x and x^2 per block in double, then the batch's mean and
// invstd, PyTorch's running statistics (momentum, unbiased variance), and for pass 2 a = gamma *
// invstd and m = the mean in float.
inline absl::Status BatchStatistics(tensorflow::OpKernelContext* ctx, float epsilon, float momentum, std::vector<float>* a, std::vector<float>* m) {
  const tensorflow::Tensor& x = ctx->input(0);
  TF_RETURN_IF_ERROR(CheckInputs(x, {&ctx->input(1), &ctx->input(2), &ctx->input(3), &ctx->input(4)}));
  const int64_t channels = x.dim_size(x.dims() - 1);
  const int64_t rows = channels == 0 ? 0 : x.NumElements() / channels;
  if (rows < 2) return tensorflow::errors::InvalidArgument("BatchNorm needs at least 2 values per channel, got ", rows);
  tensorflow::Tensor* out[4];
  for (int i = 0; i < 4; ++i) TF_RETURN_IF_ERROR(ctx->allocate_output(1 + i, tensorflow::TensorShape({channels}), &out[i]));
  const float* xp = x.flat<float>().data();
  BlockSums partial(rows, channels);
  ForBlocks(ctx, rows, channels, 2, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      double* s = partial.Start(b);
      double* q = s + channels;
      for (int64_t r = b * kBlockRows, end = std::min(rows, r + kBlockRows); r < end; ++r) {
        const float* row = xp + r * channels;
        int64_t c = ForVectors(channels, [&](auto f, int64_t c) {
          using F = decltype(f);
          const typename F::V v = F::Load(row + c);
          F::AddDouble(s + c, v);
          F::AddDouble(q + c, F::Mul(v, v));
        });
        for (; c < channels; ++c) {
          s[c] += row[c];
          q[c] += static_cast<double>(row[c]) * row[c];
        }
      }
    }
  });
  const std::vector<double> sums = partial.Reduce(ctx);
  const double* sum = sums.data();
  const double* sq = sum + channels;
  const float* gamma = ctx->input(1).flat<float>().data();
  const float* rm = ctx->input(3).flat<float>().data();
  const float* rv = ctx->input(4).flat<float>().data();
  float* nm = out[0]->flat<float>().data();
  float* nv = out[1]->flat<float>().data();
  float* mo = out[2]->flat<float>().data();
  float* io = out[3]->flat<float>().data();
  a->resize(channels);
  m->resize(channels);
  for (int64_t c = 0; c < channels; ++c) {
    const double mean = sum[c] / rows;
    const double var = std::max(0.0, sq[c] / rows - mean * mean);
    const float invstd = static_cast<float>(1.0 / std::sqrt(var + epsilon));
    mo[c] = static_cast<float>(mean);
    io[c] = invstd;
    (*a)[c] = gamma[c] * invstd;
    (*m)[c] = static_cast<float>(mean);
    nm[c] = (1 - momentum) * rm[c] + momentum * static_cast<float>(mean);
    nv[c] = (1 - momentum) * rv[c] + momentum * static_cast<float>(var * rows / (rows - 1));
  }
  return absl::OkStatus();
}

// One value's terms of the backward pass 1 (BiasInitBatchNormActGrad's, and the fused depthwise
// gradient's in batchnorm_depthwise.cc): g = dy * act'(z) with z = (x - mean) * a + beta,
// stored at gr[c] and summed (g, g * xhat) into sg[c] and sgx[c] in double; where yr is not null,
// also y = act(z) at yr[c], bit-identical to ApplyBatchNormAct's (the same denominator 1 + exp(-z)).
// SiLU's derivative is s * (1 + z * (1 - s)) with s = 1 / (1 + exp(-z)), PyTorch's formula.
struct GradTerms {
  const float* mean;
  const float* a;
  const float* beta;
  const float* invstd;
  bool act;

  template <typename F>
  void Vector(typename F::V g, const float* xr, float* gr, float* yr, int64_t c, double* sg, double* sgx) const {
    const typename F::V one = F::Set(1.0f);
    const typename F::V xc = F::Sub(F::Load(xr + c), F::Load(mean + c));
    if (act) {
      const typename F::V z = F::Fma(xc, F::Load(a + c), F::Load(beta + c));
      const typename F::V d = F::Add(one, Exp<F>(F::Neg(z)));
      const typename F::V s = F::Div(one, d);
      if (yr != nullptr) F::Store(yr + c, F::Div(z, d));
      g = F::Mul(F::Mul(g, s), F::Fma(z, F::Sub(one, s), one));
    } else if (yr != nullptr) {
      F::Store(yr + c, F::Fma(xc, F::Load(a + c), F::Load(beta + c)));
    }
    F::Store(gr + c, g);
    const typename F::V xhat = F::Mul(xc, F::Load(invstd + c));
    F::AddDouble(sg + c, g);
    F::AddDouble(sgx + c, F::Mul(g, xhat));
  }

  void One(float g, const float* xr, float* gr, float* yr, int64_t c, double* sg, double* sgx) const {
    const float xc = xr[c] - mean[c];
    if (act) {
      const float z = std::fma(xc, a[c], beta[c]);
      const float d = 1.0f + Exp1(-z);
      const float s = 1.0f / d;
      if (yr != nullptr) yr[c] = z / d;
      g = g * s * std::fma(z, 1.0f - s, 1.0f);
    } else if (yr != nullptr) {
      yr[c] = std::fma(xc, a[c], beta[c]);
    }
    gr[c] = g;
    sg[c] += g;
    sgx[c] += static_cast<double>(g) * (xc * invstd[c]);
  }
};

// The backward pass after pass 1: sums of g and g * xhat from the blocks' partials (BlockSums::Reduce),
// dgamma and dbeta, then pass 2 turns g (in dx) into dx = a * (g - mean(g) - xhat * mean(g * xhat))
// = a * g + (x - mean) * k1 + k0, in place.
inline void GradFromSums(tensorflow::OpKernelContext* ctx, const BlockSums& partial, int64_t rows, int64_t channels, const float* xp, float* dxp,
                         const float* gamma, const float* mean, const float* invstd, const float* a, float* dg, float* db) {
  const std::vector<double> sums = partial.Reduce(ctx);
  const double* sum_g = sums.data();
  const double* sum_gx = sum_g + channels;
  std::vector<float> k1(channels), k0(channels);
  for (int64_t c = 0; c < channels; ++c) {
    dg[c] = static_cast<float>(sum_gx[c]);
    db[c] = static_cast<float>(sum_g[c]);
    const double mg = sum_g[c] / rows, mgx = sum_gx[c] / rows;
    const double ad = static_cast<double>(gamma[c]) * invstd[c];
    k1[c] = static_cast<float>(-ad * invstd[c] * mgx);
    k0[c] = static_cast<float>(-ad * mg);
  }
  ForBlocks(ctx, rows, channels, 4, [&](int64_t b0, int64_t b1) {
    for (int64_t r = b0 * kBlockRows, end = std::min(rows, b1 * kBlockRows); r < end; ++r) {
      const float* xr = xp + r * channels;
      float* gr = dxp + r * channels;
      int64_t c = ForVectors(channels, [&](auto f, int64_t c) {
        using F = decltype(f);
        const typename F::V xc = F::Sub(F::Load(xr + c), F::Load(mean + c));
        const typename F::V t = F::Fma(xc, F::Load(&k1[c]), F::Load(&k0[c]));
        F::Store(gr + c, F::Fma(F::Load(gr + c), F::Load(a + c), t));
      });
      for (; c < channels; ++c) gr[c] = std::fma(gr[c], a[c], std::fma(xr[c] - mean[c], k1[c], k0[c]));
    }
  });
}

// What every op here reads from its `activation` attribute (SiLU after the BatchNorm, or none).
class ActivationKernel : public tensorflow::OpKernel {
 public:
  explicit ActivationKernel(tensorflow::OpKernelConstruction* ctx) : tensorflow::OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("activation", &activation_));
  }

 protected:
  bool activation_;
};

// a = gamma * invstd per channel, in float, as the forward's pass 2 uses it.
inline std::vector<float> ScaleOf(const float* gamma, const float* invstd, int64_t channels) {
  std::vector<float> a(channels);
  for (int64_t c = 0; c < channels; ++c) a[c] = gamma[c] * invstd[c];
  return a;
}

}  // namespace bias_init

#endif  // BIAS_INIT_BATCHNORM_ROWS_H_
