// The fp32 peak of this machine's cores as measured, not as /proc/cpuinfo's "cpu MHz" implies
// (bench/flops.ts measuredPeak): one thread per core runs 12 independent chains of vector FMAs,
// enough to fill two FMA pipes at a latency of up to 6 cycles, for a fixed count; the best of
// three runs in GFLOP/s. In a virtual machine "cpu MHz" is often the nominal clock while the cores
// boost: on the AMD EPYC guest of 2026-12-06 it read 2.10 GHz while these chains ran at 3.3-3.5 GHz.
//
//   fma_peak avx2|avx512 THREADS   -> prints the GFLOP/s of THREADS threads together
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const long kIterations = 40000000;  // ~0.1-0.2 s a run at 3 GHz
static int use_avx512;
static pthread_barrier_t start;
static volatile float sink;

#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

__attribute__((target("avx2,fma"))) static float Avx2(long iterations) {
  const __m256 b = _mm256_set1_ps(1.0000001f), c = _mm256_set1_ps(1e-7f);
#define DECLARE(i) __m256 a##i = _mm256_set1_ps((float)i);
#define STEP(i) a##i = _mm256_fmadd_ps(a##i, b, c);
#define SUM(i) s = _mm256_add_ps(s, a##i);
  CHAINS(DECLARE)
  for (long k = 0; k < iterations; ++k) { CHAINS(STEP) }
  __m256 s = _mm256_setzero_ps();
  CHAINS(SUM)
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
#undef DECLARE
#undef STEP
#undef SUM
}

__attribute__((target("avx512f"))) static float Avx512(long iterations) {
  const __m512 b = _mm512_set1_ps(1.0000001f), c = _mm512_set1_ps(1e-7f);
#define DECLARE(i) __m512 a##i = _mm512_set1_ps((float)i);
#define STEP(i) a##i = _mm512_fmadd_ps(a##i, b, c);
#define SUM(i) s = _mm512_add_ps(s, a##i);
  CHAINS(DECLARE)
  for (long k = 0; k < iterations; ++k) { CHAINS(STEP) }
  __m512 s = _mm512_setzero_ps();
  CHAINS(SUM)
  return _mm512_reduce_add_ps(s);
#undef DECLARE
#undef STEP
#undef SUM
}

static void* Run(void* unused) {
  (void)unused;
  pthread_barrier_wait(&start);
  sink = use_avx512 ? Avx512(kIterations) : Avx2(kIterations);
  return NULL;
}

static double Now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
  if (argc != 3 || (strcmp(argv[1], "avx2") != 0 && strcmp(argv[1], "avx512") != 0) || atoi(argv[2]) < 1) {
    fprintf(stderr, "usage: fma_peak avx2|avx512 THREADS\n");
    return 2;
  }
  use_avx512 = strcmp(argv[1], "avx512") == 0;
  const int threads = atoi(argv[2]);
  const double flop = (double)threads * kIterations * 12 * (use_avx512 ? 16 : 8) * 2;
  double best = 0;
  pthread_t* ids = malloc(sizeof(pthread_t) * threads);
  for (int run = 0; run < 3; ++run) {
    pthread_barrier_init(&start, NULL, threads + 1);
    for (int t = 0; t < threads; ++t) pthread_create(&ids[t], NULL, Run, NULL);
    pthread_barrier_wait(&start);
    const double t0 = Now();
    for (int t = 0; t < threads; ++t) pthread_join(ids[t], NULL);
    const double gflops = flop / (Now() - t0) / 1e9;
    if (gflops > best) best = gflops;
    pthread_barrier_destroy(&start);
  }
  free(ids);
  printf("%.1f\n", best);
  return 0;
}
