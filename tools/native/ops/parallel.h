// How this project's kernels spread a pass over TensorFlow's intra-op pool: fixed units of work
// (blocks of rows, output rows, taps), handed out a few at a time from one atomic counter to the
// calling thread and as many pool threads as make the core count (docs/performance.md, item 37).
// TensorFlow's cost-based ParallelFor cuts a pass into up to 4 blocks per thread and, with more
// blocks than threads, runs the root on the pool while the caller sleeps: three threads' wake-ups
// per pass and a tail in which one core waits for the other's last block. Which thread runs a unit
// never changes a result: every sum is kept per fixed unit and added in unit order.
#ifndef BIAS_INIT_PARALLEL_H_
#define BIAS_INIT_PARALLEL_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "tensorflow/core/framework/op_kernel.h"

namespace bias_init {

constexpr int64_t kChunksPerThread = 16;  // chunks per worker: the tail is about 1/16 of one worker's share

// fn(begin, end) over [0, units), in chunks of at least one unit, by the caller and pool threads.
// cost_per_unit (about the operations of one unit) keeps small passes on the calling thread.
// chunks_per_worker 1: one contiguous range each, for passes whose every unit reads across the
// whole of an array (the sums over blocks per channel), where small chunks would each read it all.
template <typename Fn>
inline void ParallelUnits(tensorflow::OpKernelContext* ctx, int64_t units, int64_t cost_per_unit, Fn fn, int64_t chunks_per_worker = kChunksPerThread) {
  if (units <= 0) return;
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  // A second worker from 40,000 operations: with the caller working, one wake-up, where Eigen's
  // cost model (TensorFlow's ParallelFor) counts 100,000 cycles of start-up and wants 210,000.
  constexpr int64_t kMinCostPerWorker = 20000;
  const int64_t by_cost = std::max<int64_t>(1, units * std::max<int64_t>(1, cost_per_unit) / kMinCostPerWorker);
  const int64_t workers = std::min<int64_t>({static_cast<int64_t>(pool->NumThreads()), units, by_cost});
  if (workers <= 1) {
    fn(0, units);
    return;
  }
  const int64_t chunk = std::max<int64_t>(1, (units + workers * chunks_per_worker - 1) / (workers * chunks_per_worker));
  const int64_t chunks = (units + chunk - 1) / chunk;
  std::atomic<int64_t> next{0};
  pool->ParallelFor(workers, tsl::thread::ThreadPool::SchedulingParams::Fixed(1), [&](int64_t, int64_t) {
    for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < chunks; c = next.fetch_add(1, std::memory_order_relaxed)) {
      fn(c * chunk, std::min(units, (c + 1) * chunk));
    }
  });
}

// Per-column sums of `blocks` rows of `columns` values (partial sums kept per fixed block), each
// column's blocks added in block order in double from zero: the same result on any thread count.
// The columns are split into one contiguous range per core (each range reads its part of every row).
template <typename T>
inline std::vector<double> SumBlocksByColumn(tensorflow::OpKernelContext* ctx, const T* partial, int64_t blocks, int64_t columns) {
  std::vector<double> sums(columns, 0.0);
  ParallelUnits(ctx, columns, blocks * 2, [&](int64_t c0, int64_t c1) {
    for (int64_t b = 0; b < blocks; ++b) {
      const T* p = partial + b * columns;
      for (int64_t c = c0; c < c1; ++c) sums[c] += p[c];
    }
  }, 1);
  return sums;
}

}  // namespace bias_init

#endif  // BIAS_INIT_PARALLEL_H_
