// What the benchmark drivers (compare.ts, env_ab.ts, cpu_workers.ts, recompute_memory.ts) share when
// they read their child processes: the JSON result line a child prints last, and the summaries of
// a measure over rounds.

/** The last line of a child's stdout that is a JSON object (its result), or undefined. */
export function lastJsonLine(stdout: string): string | undefined {
  return stdout.trim().split("\n").reverse().find((l) => l.startsWith("{"));
}

/** Arithmetic mean (NaN for no values: a setting whose every round failed). */
export const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** "min-max" over rounds with `digits` decimals, or the one value. */
export const rangeText = (xs: number[], digits: number): string =>
  (xs.length < 2 ? xs[0].toFixed(digits) : `${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)}`);
