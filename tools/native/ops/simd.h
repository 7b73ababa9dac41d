// The vector operations this project's kernels use, for two widths: F8 (8 floats, AVX2 + FMA) and,
// when the file is compiled with -mavx512f, F16 (16 floats, AVX-512F). tools/native/build.sh
// compiles the kernels twice (compile_ops.sh), into an AVX2 addon and an AVX-512 one, and
// src/engine/custom_ops.ts loads the AVX-512 one on CPUs that have AVX-512F. A kernel loops over
// channels with ForVectors: 16 at a time where F16 exists, then 8, then its own scalar tail (or
// with ForVectorGroups, which takes pairs of vectors first where the caller allows). Every lane
// does the same IEEE operations in the same order at either width (the sums run per channel,
// vertically), so both addons give bit-identical results (test/custom_ops_isa.test.ts checks this
// where AVX-512 runs).
#ifndef BIAS_INIT_SIMD_H_
#define BIAS_INIT_SIMD_H_

#include <immintrin.h>

#include <cstdint>
#include <type_traits>

namespace bias_init {

struct F8 {
  using V = __m256;
  static constexpr int64_t kWidth = 8;
  static V Zero() { return _mm256_setzero_ps(); }
  static V Set(float v) { return _mm256_set1_ps(v); }
  static V Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V Add(V a, V b) { return _mm256_add_ps(a, b); }
  static V Sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V Mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V Div(V a, V b) { return _mm256_div_ps(a, b); }
  static V Min(V a, V b) { return _mm256_min_ps(a, b); }
  static V Max(V a, V b) { return _mm256_max_ps(a, b); }
  static V Fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }    // a * b + c
  static V Fnma(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }  // c - a * b
  static V Floor(V a) { return _mm256_floor_ps(a); }
  static V Neg(V a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
  // 2^n for the integer-valued floats n in [-127, 128] (exp's scaling).
  static V Pow2(V n) {
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_castsi256_ps(e);
  }
  // acc[0..7] += v, in double.
  static void AddDouble(double* acc, V v) {
    _mm256_storeu_pd(acc, _mm256_add_pd(_mm256_loadu_pd(acc), _mm256_cvtps_pd(_mm256_castps256_ps128(v))));
    _mm256_storeu_pd(acc + 4, _mm256_add_pd(_mm256_loadu_pd(acc + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))));
  }
};

#ifdef __AVX512F__
struct F16 {
  using V = __m512;
  static constexpr int64_t kWidth = 16;
  static V Zero() { return _mm512_setzero_ps(); }
  static V Set(float v) { return _mm512_set1_ps(v); }
  static V Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V Add(V a, V b) { return _mm512_add_ps(a, b); }
  static V Sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V Mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V Div(V a, V b) { return _mm512_div_ps(a, b); }
  static V Min(V a, V b) { return _mm512_min_ps(a, b); }
  static V Max(V a, V b) { return _mm512_max_ps(a, b); }
  static V Fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V Fnma(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
  static V Floor(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
  // The sign flip as an integer xor: _mm512_xor_ps needs AVX-512DQ.
  static V Neg(V a) { return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32(INT32_MIN))); }
  static V Pow2(V n) {
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_castsi512_ps(e);
  }
  static void AddDouble(double* acc, V v) {
    const __m256 lo = _mm512_castps512_ps256(v);
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    _mm512_storeu_pd(acc, _mm512_add_pd(_mm512_loadu_pd(acc), _mm512_cvtps_pd(lo)));
    _mm512_storeu_pd(acc + 8, _mm512_add_pd(_mm512_loadu_pd(acc + 8), _mm512_cvtps_pd(hi)));
  }
};
#endif

// v itself, as a value the compiler must have rounded: GCC contracts a * b + c into one fma, for
// intrinsics too (its default -ffp-contract=fast), which would round once where TensorFlow's Mul
// and Add round twice. A product passed through this stays apart from the sum it feeds.
template <typename V>
inline V Rounded(V v) {
  asm("" : "+v"(v));
  return v;
}

// The instruction set this addon was compiled for (addon.cc exports it).
#ifdef __AVX512F__
constexpr const char* kIsa = "avx512";
#else
constexpr const char* kIsa = "avx2";
#endif

// Calls body(F{}, std::integral_constant<int, M>{}, c) over channels [0, channels) in groups of M
// vectors of F from channel c: pairs of F16 (where it is compiled in, and kPairs16), single F16s,
// pairs of F8 (kPairs8), single F8s; returns the first channel not covered (the caller's scalar
// tail starts there). A kernel that can keep two vectors' sums in registers takes pairs
// (depthwise_rows.h, depthwise_filter_grad.h: at 8 floats a pair is a whole 64-byte line).
template <bool kPairs16, bool kPairs8, typename Body>
inline int64_t ForVectorGroups(int64_t channels, Body body) {
  using One = std::integral_constant<int, 1>;
  using Two = std::integral_constant<int, 2>;
  int64_t c = 0;
#ifdef __AVX512F__
  if constexpr (kPairs16)
    for (; c + 2 * F16::kWidth <= channels; c += 2 * F16::kWidth) body(F16{}, Two{}, c);
  for (; c + F16::kWidth <= channels; c += F16::kWidth) body(F16{}, One{}, c);
#endif
  if constexpr (kPairs8)
    for (; c + 2 * F8::kWidth <= channels; c += 2 * F8::kWidth) body(F8{}, Two{}, c);
  for (; c + F8::kWidth <= channels; c += F8::kWidth) body(F8{}, One{}, c);
  return c;
}

// Calls body(F{}, c) for c = 0, W, 2W, ... while a whole vector fits in `channels`, with the
// widest F compiled in, then F8 for what is left in steps of 8; returns the first channel not
// covered (the caller's scalar tail starts there).
template <typename Body>
inline int64_t ForVectors(int64_t channels, Body body) {
  return ForVectorGroups<false, false>(channels, [&](auto f, auto, int64_t c) { body(f, c); });
}

// exp, Cephes' expf as Eigen's pexp computes it (range reduction by ln 2 in two parts, degree-5
// polynomial): ~1 ulp on [-88, 88]; below -88.38 it returns ~0, above, +inf.
template <typename F>
inline typename F::V Exp(typename F::V x) {
  x = F::Max(F::Min(x, F::Set(88.3762626647949f)), F::Set(-88.3762626647949f));
  const typename F::V fx = F::Floor(F::Fma(x, F::Set(1.44269504088896341f), F::Set(0.5f)));
  x = F::Fnma(fx, F::Set(0.693359375f), x);
  x = F::Fnma(fx, F::Set(-2.12194440e-4f), x);
  const typename F::V z = F::Mul(x, x);
  typename F::V y = F::Set(1.9875691500E-4f);
  y = F::Fma(y, x, F::Set(1.3981999507E-3f));
  y = F::Fma(y, x, F::Set(8.3334519073E-3f));
  y = F::Fma(y, x, F::Set(4.1665795894E-2f));
  y = F::Fma(y, x, F::Set(1.6666665459E-1f));
  y = F::Fma(y, x, F::Set(5.0000001201E-1f));
  y = F::Fma(y, z, x);
  y = F::Add(y, F::Set(1.0f));
  return F::Mul(y, F::Pow2(fx));
}

// The same exp for one float (scalar tails), through the 8-wide code so it rounds the same.
inline float Exp1(float x) {
  alignas(32) float v[8] = {x};
  _mm256_store_ps(v, Exp<F8>(_mm256_load_ps(v)));
  return v[0];
}

// SiLU, z / (1 + exp(-z)) (PyTorch's formula), for a vector and for one float.
template <typename F>
inline typename F::V Silu(typename F::V z) {
  return F::Div(z, F::Add(F::Set(1.0f), Exp<F>(F::Neg(z))));
}

inline float Silu1(float z) { return z / (1.0f + Exp1(-z)); }

}  // namespace bias_init

#endif  // BIAS_INIT_SIMD_H_
