// What the benchmark drivers (compare.ts, env_ab.ts, cpu_workers.ts, recompute_memory.ts) share when
// they run and read their child processes: the environment PyTorch runs in with its heap kept, the
// JSON result line a child prints last, and the summaries of a measure over rounds.

/** The last line of a child's stdout that is a JSON object (its result), or undefined. */
export function lastJsonLine(stdout: string): string | undefined {
  return stdout.trim().split("\n").reverse().find((l) => l.startsWith("{"));
}

/** Arithmetic mean (NaN for no values: a setting whose every round failed). */
export const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** "min-max" over rounds with `digits` decimals, or the one value. */
export const rangeText = (xs: number[], digits: number): string =>
  (xs.length < 2 ? xs[0].toFixed(digits) : `${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)}`);

/**
 * glibc's malloc settings (mallopt(3), read from the environment) that keep PyTorch's freed memory
 * in the process: blocks up to 4 GiB come from the heap instead of their own mmap, and the heap is
 * not trimmed below 64 GiB. By default glibc maps every block over 32 MiB (B1's activations at
 * 240x240 batch 16) afresh and unmaps it when freed, and the kernel faults each of its pages in
 * again: measured on the AMD EPYC guest with AVX-512 (2026-12-04), 2.6 million minor faults in a
 * 45 s run of tools/bench_pytorch.py at 240x240 against 0.8 million with these settings, training
 * 3.9 against 10.9 img/s. tcmalloc (LD_PRELOAD) was as fast, jemalloc's defaults far slower there.
 * This project's engine keeps its memory in TensorFlow's BFC pool (src/engine/backend.ts sets TF_CPU_ALLOCATOR_USE_BFC).
 */
export const TORCH_KEPT_HEAP: NodeJS.ProcessEnv = { MALLOC_MMAP_THRESHOLD_: String(2 ** 32), MALLOC_TRIM_THRESHOLD_: String(2 ** 36) };
