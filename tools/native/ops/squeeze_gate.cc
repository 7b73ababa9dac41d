// Squeeze-excitation's gate, the small part of the block after the spatial mean, as one op each way
// (docs/performance.md, item 38):
//
//   BiasInitSqueezeGate(pooled [N, C], w1 [C, S], b1 [S], w2 [S, C], b2 [C])
//       -> gate = sigmoid(silu(pooled @ w1 + b1) @ w2 + b2) [N, C], a = pooled @ w1 + b1 [N, S]
//   BiasInitSqueezeGateGrad(dgate [N, C], pooled, a, gate, w1, w2; attr positions = H * W)
//       -> shift = (the pooled input's gradient) / positions [N, C], dw1 [C, S], db1 [S], dw2 [S, C], db2 [C]
//
// As TensorFlow ops the gate took 9 ops forward and ~18 backward per block, on tensors of a few
// thousand values: at 32x32 batch 64 about a third of a B1 training step's ops, each costing more to
// dispatch than to run. The backward pass follows TF.js's gradients formula for formula: through
// sigmoid dv = dgate * (g * (1 - g)); through SiLU (u = a * sigmoid(a)) da = du * sa + (du * a) *
// (sa * (1 - sa)); shift = (da @ w1^T) / positions, the mean's gradient that the caller spreads over
// H and W. sa and u are recomputed from a (the same function: the same bits as the forward's).
//
// Every product is out[m, j] = sum over k of A[m, k] * B[k, j], summed from zero by one fma per k in
// k's order (the bias added after), vectorized over j: each value is the same at any vector width
// and thread count. The matrices are small, so products on the other side (w1^T, w2^T) read
// transposed copies made per call. sigmoid is 1 / (1 + exp(-x)) with simd.h's exp.
#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <string>
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

REGISTER_OP("BiasInitSqueezeGate")
    .Input("pooled: float")
    .Input("w1: float")
    .Input("b1: float")
    .Input("w2: float")
    .Input("b2: float")
    .Output("gate: float")
    .Output("a: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->UnknownShapeOfRank(2));
      c->set_output(1, c->UnknownShapeOfRank(2));
      return absl::OkStatus();
    });

REGISTER_OP("BiasInitSqueezeGateGrad")
    .Input("dgate: float")
    .Input("pooled: float")
    .Input("a: float")
    .Input("gate: float")
    .Input("w1: float")
    .Input("w2: float")
    .Output("shift: float")
    .Output("dw1: float")
    .Output("db1: float")
    .Output("dw2: float")
    .Output("db2: float")
    .Attr("positions: int >= 1")
    .SetShapeFn([](InferenceContext* c) {
      for (int i = 0; i < 5; ++i) c->set_output(i, c->UnknownShape());
      return absl::OkStatus();
    });

namespace {

using bias_init::ForVectors;

// The operands of out[m, j] = sum_k a[m * am + k * ak] * b[k * j_count + j].
struct Product {
  const float* a;
  int64_t am, ak;
  const float* b;
  int64_t k_count, j_count;
  float* out;
};

// Rows m .. m + R, columns j .. j + V vectors of F: R x V sums kept in registers over k.
template <typename F, int R, int V>
inline void Tile(const Product& p, int64_t m, int64_t j) {
  typename F::V acc[R][V];
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < V; ++v) acc[r][v] = F::Zero();
  }
  for (int64_t k = 0; k < p.k_count; ++k) {
    typename F::V bv[V];
    for (int v = 0; v < V; ++v) bv[v] = F::Load(p.b + k * p.j_count + j + v * F::kWidth);
    for (int r = 0; r < R; ++r) {
      const typename F::V av = F::Set(p.a[(m + r) * p.am + k * p.ak]);
      for (int v = 0; v < V; ++v) acc[r][v] = F::Fma(av, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < V; ++v) F::Store(p.out + (m + r) * p.j_count + j + v * F::kWidth, acc[r][v]);
  }
}

// Rows m .. m + R, every column: 16-wide tiles where the addon has them, then 8-wide, then one
// column at a time from the last multiple of 8 (the same columns at either width).
template <int R>
inline void Rows(const Product& p, int64_t m) {
  int64_t j = 0;
#ifdef __AVX512F__
  for (; j + 32 <= p.j_count; j += 32) Tile<bias_init::F16, R, 2>(p, m, j);
  for (; j + 16 <= p.j_count; j += 16) Tile<bias_init::F16, R, 1>(p, m, j);
#endif
  for (; j + 16 <= p.j_count; j += 16) Tile<bias_init::F8, R, 2>(p, m, j);
  for (; j + 8 <= p.j_count; j += 8) Tile<bias_init::F8, R, 1>(p, m, j);
  for (; j < p.j_count; ++j) {
    for (int r = 0; r < R; ++r) {
      float acc = 0.0f;
      for (int64_t k = 0; k < p.k_count; ++k) acc = std::fma(p.a[(m + r) * p.am + k * p.ak], p.b[k * p.j_count + j], acc);
      p.out[(m + r) * p.j_count + j] = acc;
    }
  }
}

// out[m, j] = sum_k a[m * am + k * ak] * b[k * j_count + j] (+ bias[j] after the sum), m in [0, m_count),
// in tiles of 4 rows (the last rows one at a time), each tile's sums in registers.
void Products(OpKernelContext* ctx, const float* a, int64_t am, int64_t ak, const float* b, const float* bias,
              int64_t m_count, int64_t k_count, int64_t j_count, float* out) {
  constexpr int64_t kRows = 4;
  const Product p{a, am, ak, b, k_count, j_count, out};
  auto tiles = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t m0 = t * kRows, m1 = std::min(m_count, m0 + kRows);
      if (m1 - m0 == kRows) {
        Rows<kRows>(p, m0);
      } else {
        for (int64_t m = m0; m < m1; ++m) Rows<1>(p, m);
      }
      if (bias != nullptr) {
        for (int64_t m = m0; m < m1; ++m) {
          for (int64_t j = 0; j < j_count; ++j) out[m * j_count + j] += bias[j];
        }
      }
    }
  };
  bias_init::ParallelUnits(ctx, (m_count + kRows - 1) / kRows, kRows * k_count * j_count * 2, tiles);
}

// dst[j, i] = src[i, j] for src [rows, cols].
std::vector<float> Transposed(const float* src, int64_t rows, int64_t cols) {
  std::vector<float> dst(rows * cols);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) dst[j * rows + i] = src[i * cols + j];
  }
  return dst;
}

template <typename F>
typename F::V Sigmoid(typename F::V x) {
  return F::Div(F::Set(1.0f), F::Add(F::Set(1.0f), bias_init::Exp<F>(F::Neg(x))));
}

float Sigmoid1(float x) { return 1.0f / (1.0f + bias_init::Exp1(-x)); }

// fn(F, i) over vectors of [0, count), then fn1(i) for the scalar tail.
template <typename Body, typename Body1>
void Elementwise(int64_t count, Body fn, Body1 fn1) {
  int64_t i = ForVectors(count, fn);
  for (; i < count; ++i) fn1(i);
}

struct Dims {
  int64_t n, c, s;
};

absl::Status CheckShape(const Tensor& t, std::initializer_list<int64_t> dims, const char* name) {
  bool ok = t.dims() == static_cast<int>(dims.size());
  int i = 0;
  for (int64_t d : dims) ok = ok && t.dim_size(i++) == d;
  if (ok) return absl::OkStatus();
  std::string want;
  for (int64_t d : dims) want += (want.empty() ? "" : ", ") + std::to_string(d);
  return tensorflow::errors::InvalidArgument(name, " must be [", want, "], got ", t.shape().DebugString());
}

// N, C and S from pooled [N, C] and w1 [C, S], and w2 checked against them.
absl::Status ReadDims(const Tensor& pooled, const Tensor& w1, const Tensor& w2, Dims* d) {
  if (pooled.dims() != 2 || w1.dims() != 2) return tensorflow::errors::InvalidArgument("pooled and w1 must be matrices, got ", pooled.shape().DebugString(), " and ", w1.shape().DebugString());
  *d = {pooled.dim_size(0), pooled.dim_size(1), w1.dim_size(1)};
  TF_RETURN_IF_ERROR(CheckShape(w1, {d->c, d->s}, "w1"));
  return CheckShape(w2, {d->s, d->c}, "w2");
}

// sa = sigmoid(a), u = a * sa.
void SiluParts(const float* a, int64_t count, float* sa, float* u) {
  Elementwise(count, [&](auto f, int64_t i) {
    using F = decltype(f);
    const typename F::V x = F::Load(a + i), s = Sigmoid<F>(x);
    F::Store(sa + i, s);
    F::Store(u + i, F::Mul(x, s));
  }, [&](int64_t i) {
    sa[i] = Sigmoid1(a[i]);
    u[i] = a[i] * sa[i];
  });
}

class SqueezeGateOp : public OpKernel {
 public:
  explicit SqueezeGateOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& pooled = ctx->input(0);
    Dims d;
    OP_REQUIRES_OK(ctx, ReadDims(pooled, ctx->input(1), ctx->input(3), &d));
    OP_REQUIRES_OK(ctx, CheckShape(ctx->input(2), {d.s}, "b1"));
    OP_REQUIRES_OK(ctx, CheckShape(ctx->input(4), {d.c}, "b2"));
    Tensor *gate, *a;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({d.n, d.c}), &gate));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({d.n, d.s}), &a));
    float* ap = a->flat<float>().data();
    float* gp = gate->flat<float>().data();
    Products(ctx, pooled.flat<float>().data(), d.c, 1, ctx->input(1).flat<float>().data(), ctx->input(2).flat<float>().data(), d.n, d.c, d.s, ap);
    std::vector<float> sa(d.n * d.s), u(d.n * d.s);
    SiluParts(ap, d.n * d.s, sa.data(), u.data());
    Products(ctx, u.data(), d.s, 1, ctx->input(3).flat<float>().data(), ctx->input(4).flat<float>().data(), d.n, d.s, d.c, gp);
    Elementwise(d.n * d.c, [&](auto f, int64_t i) {
      using F = decltype(f);
      F::Store(gp + i, Sigmoid<F>(F::Load(gp + i)));
    }, [&](int64_t i) { gp[i] = Sigmoid1(gp[i]); });
  }
};

class SqueezeGateGradOp : public OpKernel {
 public:
  explicit SqueezeGateGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("positions", &positions_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& pooled = ctx->input(1);
    const Tensor& w1 = ctx->input(4);
    const Tensor& w2 = ctx->input(5);
    Dims d;
    OP_REQUIRES_OK(ctx, ReadDims(pooled, w1, w2, &d));
    OP_REQUIRES_OK(ctx, CheckShape(ctx->input(0), {d.n, d.c}, "dgate"));
    OP_REQUIRES_OK(ctx, CheckShape(ctx->input(2), {d.n, d.s}, "a"));
    OP_REQUIRES_OK(ctx, CheckShape(ctx->input(3), {d.n, d.c}, "gate"));
    Tensor *shift, *dw1, *db1, *dw2, *db2;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({d.n, d.c}), &shift));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({d.c, d.s}), &dw1));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({d.s}), &db1));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({d.s, d.c}), &dw2));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, TensorShape({d.c}), &db2));
    const float* dg = ctx->input(0).flat<float>().data();
    const float* pp = pooled.flat<float>().data();
    const float* ap = ctx->input(2).flat<float>().data();
    const float* gp = ctx->input(3).flat<float>().data();
    const int64_t nc = d.n * d.c, ns = d.n * d.s;

    // Through the sigmoid: dv = dgate * (g * (1 - g)).
    std::vector<float> dv(nc);
    Elementwise(nc, [&](auto f, int64_t i) {
      using F = decltype(f);
      const typename F::V g = F::Load(gp + i);
      F::Store(&dv[i], F::Mul(F::Load(dg + i), F::Mul(g, F::Sub(F::Set(1.0f), g))));
    }, [&](int64_t i) { dv[i] = dg[i] * (gp[i] * (1.0f - gp[i])); });
    // Through fc2: du = dv @ w2^T; dw2 = u^T @ dv; db2 = the sum of dv over samples.
    std::vector<float> sa(ns), u(ns), du(ns);
    SiluParts(ap, ns, sa.data(), u.data());
    const std::vector<float> w2t = Transposed(w2.flat<float>().data(), d.s, d.c);
    Products(ctx, dv.data(), d.c, 1, w2t.data(), nullptr, d.n, d.c, d.s, du.data());
    Products(ctx, u.data(), 1, d.s, dv.data(), nullptr, d.s, d.n, d.c, dw2->flat<float>().data());
    ColumnSums(dv.data(), d.n, d.c, db2->flat<float>().data());
    // Through SiLU: da = du * sa + (du * a) * (sa * (1 - sa)).
    std::vector<float> da(ns);
    Elementwise(ns, [&](auto f, int64_t i) {
      using F = decltype(f);
      const typename F::V g = F::Load(&du[i]), s = F::Load(&sa[i]);
      F::Store(&da[i], F::Add(F::Mul(g, s), F::Mul(F::Mul(g, F::Load(ap + i)), F::Mul(s, F::Sub(F::Set(1.0f), s)))));
    }, [&](int64_t i) { da[i] = du[i] * sa[i] + (du[i] * ap[i]) * (sa[i] * (1.0f - sa[i])); });
    // Through fc1: the pooled input's gradient da @ w1^T, over the positions; dw1 = pooled^T @ da; db1.
    const std::vector<float> w1t = Transposed(w1.flat<float>().data(), d.c, d.s);
    float* sp = shift->flat<float>().data();
    Products(ctx, da.data(), d.s, 1, w1t.data(), nullptr, d.n, d.s, d.c, sp);
    const float count = static_cast<float>(positions_);
    Elementwise(nc, [&](auto f, int64_t i) {
      using F = decltype(f);
      F::Store(sp + i, F::Div(F::Load(sp + i), F::Set(count)));
    }, [&](int64_t i) { sp[i] = sp[i] / count; });
    Products(ctx, pp, 1, d.c, da.data(), nullptr, d.c, d.n, d.s, dw1->flat<float>().data());
    ColumnSums(da.data(), d.n, d.s, db1->flat<float>().data());
  }

 private:
  // out[j] = sum over rows of m[row, j], in row order from zero.
  static void ColumnSums(const float* m, int64_t rows, int64_t cols, float* out) {
    for (int64_t j = 0; j < cols; ++j) out[j] = 0.0f;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < cols; ++j) out[j] += m[r * cols + j];
    }
  }

  int64_t positions_;
};

}  // namespace

REGISTER_KERNEL_BUILDER(Name("BiasInitSqueezeGate").Device(tensorflow::DEVICE_CPU), SqueezeGateOp);
REGISTER_KERNEL_BUILDER(Name("BiasInitSqueezeGateGrad").Device(tensorflow::DEVICE_CPU), SqueezeGateGradOp);
