// The CPU as /proc/cpuinfo describes it (model, clock, feature flags), read once per process, and
// whether TensorFlow runs its oneDNN optimizations on it. Used by evaluation's per-CPU rule
// (model/ops/native_eval.ts foldsInputScale), `make doctor`, and the benchmarks' fp32 peak
// (bench/flops.ts). Empty where /proc/cpuinfo is absent (not Linux).
//
// May touch: /proc/cpuinfo and the environment (read only).
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

/** Whether the CPU has AVX-512 (avx512f), which oneDNN and PyTorch use at run time; TF's wheel builds its Eigen kernels without AVX2. */
export function hasAvx512(): boolean {
  return cpuInfo().flags.has("avx512f");
}

/** The CPU flags for which TensorFlow turns oneDNN on by itself on Linux (DefaultOneDnnPolicy in tensorflow/core/util/port.cc). */
const ONEDNN_DEFAULT_FLAGS = ["avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"];

/**
 * Whether TensorFlow runs with its oneDNN optimizations (which, in eager mode, also move
 * BatchMatMulV2 and other ops to oneDNN's kernels): TF_ENABLE_ONEDNN_OPTS when it is 1/true or
 * 0/false, else TensorFlow's own default, on only for CPUs with AVX-512 VNNI or BF16, AVX-VNNI or
 * AMX. Mirrors TensorFlow's rule; the engine cannot ask the library.
 */
export function tensorflowOneDnnOn(env: NodeJS.ProcessEnv = process.env): boolean {
  return tensorflowBool(env.TF_ENABLE_ONEDNN_OPTS) ?? ONEDNN_DEFAULT_FLAGS.some((f) => cpuInfo().flags.has(f));
}

/** A boolean environment variable as TensorFlow reads it (1/true, 0/false, any case); null when unset or anything else (TF keeps its default). */
export function tensorflowBool(value: string | undefined): boolean | null {
  const v = (value ?? "").trim().toLowerCase();
  return v === "1" || v === "true" ? true : v === "0" || v === "false" ? false : null;
}
