// The hypervisor's share of a time window: on a virtual machine, /proc/stat's "steal" column counts
// the time this guest's CPUs were ready to run while the host ran something else. A benchmark round
// that lost a tenth of its time that way reads a tenth slower for reasons outside both engines, so
// bench/train_speed.ts and tools/bench_pytorch.py report it beside their speeds, and
// bench/compare.ts prints the ratios over the rounds that lost little as well as over all.
import * as fs from "fs";

/** The machine's CPU time counters (the "cpu" line of /proc/stat, in clock ticks), or null where there is none. */
export function cpuTicks(): number[] | null {
  try {
    const line = fs.readFileSync("/proc/stat", "utf8").split("\n")[0];
    return line.startsWith("cpu ") ? line.trim().split(/\s+/).slice(1).map(Number) : null;
  } catch {
    return null;
  }
}

/** A steal share as a percentage to one decimal, or "?" where it was not measured. */
export function stealText(share: number | null | undefined): string {
  return share === null || share === undefined ? "?" : `${(100 * share).toFixed(1)}%`;
}

/** Steal's share of all CPU time between two readings (0-1), or null when unknown. Column 8 is steal; guest time is inside user. */
export function stealShare(before: number[] | null, after: number[] | null): number | null {
  if (before === null || after === null || before.length < 8 || after.length < 8) return null;
  const d = after.slice(0, 8).map((v, i) => v - before[i]);
  const total = d.reduce((a, b) => a + b, 0);
  return total > 0 ? d[7] / total : null;
}
