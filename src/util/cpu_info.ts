// The CPU as /proc/cpuinfo describes it (model, clock, feature flags), read once per process.
// Used by evaluation's per-ISA rule (model/ops/native_eval.ts foldsInputScale) and by the
// benchmarks' fp32 peak (bench/flops.ts). Empty where /proc/cpuinfo is absent (not Linux).
//
// May touch: /proc/cpuinfo (read only).
import * as fs from "fs";

export interface CpuInfo {
  model: string | undefined;
  /** "cpu MHz" of the first core; NaN when absent. */
  mhz: number;
  flags: ReadonlySet<string>;
}

let cached: CpuInfo | undefined;

export function cpuInfo(): CpuInfo {
  if (cached === undefined) {
    const text = fs.existsSync("/proc/cpuinfo") ? fs.readFileSync("/proc/cpuinfo", "utf8") : "";
    const field = (name: string): string | undefined => new RegExp(`^${name}\\s*:\\s*(.*)$`, "m").exec(text)?.[1];
    cached = { model: field("model name"), mhz: Number(field("cpu MHz") ?? NaN), flags: new Set((field("flags") ?? "").split(/\s+/).filter(Boolean)) };
  }
  return cached;
}

/** Whether the CPU has AVX-512 (avx512f), which oneDNN uses at run time where TF's Eigen kernels stay AVX. */
export function hasAvx512(): boolean {
  return cpuInfo().flags.has("avx512f");
}
