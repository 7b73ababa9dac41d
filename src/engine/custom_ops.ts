// This project's own TensorFlow kernels with AVX2/FMA code (tools/native/ops/: training BatchNorm +
// SiLU, the depthwise convolution and squeeze-excitation's passes, forward and backward, and
// evaluation's depthwise stage), which
// `make native` builds into two Node addons next to the CPU engine: one for AVX2 + FMA and one for
// AVX-512 (the same source at twice the vector width, bit-identical results; tools/native/ops/simd.h).
// On a CPU with AVX-512F the engine loads the AVX-512 one unless BIAS_INIT_CUSTOM_OPS=avx2. Loading
// an addon registers the ops in the libtensorflow the engine loaded; the engine then runs them by name
// (model/ops/native_batchnorm.ts, native_conv.ts, squeeze_excitation.ts, native_eval.ts).
// They are used when the CPU engine is active, the addon is built and current, the CPU has AVX2
// and FMA, and BIAS_INIT_CUSTOM_OPS is not 0; otherwise TensorFlow's own ops run, and `make doctor`
// and the backend line say which.
//
// May touch: the native engine's package folder (reads, and requires the addon), /proc/cpuinfo
// (through util/cpu_info.ts) and the environment (read only).
import * as fs from "fs";
import * as path from "path";
import { ConfigError, readEnvironment } from "../config";
import { cpuInfo } from "../util/cpu_info";

/** The kernels' version the addon must export (tools/native/ops/addon.cc kVersion); build.sh's CUSTOM_OPS names it too. */
export const CUSTOM_OPS_VERSION = 22;

/** The instruction sets the kernels are built for (tools/native/ops/simd.h). */
export type KernelIsa = "avx2" | "avx512";

/** An addon's place inside a CPU engine's package folder (tools/native/build.sh step 4). */
export function customOpsPath(packageDir: string, isa: KernelIsa = "avx2"): string {
  return path.join(packageDir, "bias-ops", isa === "avx512" ? "bias_init_ops_avx512.node" : "bias_init_ops.node");
}

export interface CustomOpsState {
  active: boolean;
  /** The addon loaded (null: none). */
  isa: KernelIsa | null;
  /** Not active, and `make native ARGS=--force` would change that (not built, stale, failed to load). */
  fixable: boolean;
  /** One line: what runs and why (for the backend line and `make doctor`). */
  reason: string;
}

let state: CustomOpsState = { active: false, isa: null, fixable: false, reason: "not loaded (the engine is not the CPU package of `make native`)" };
let override: boolean | null = null;

/** Whether training BatchNorm, the depthwise convolutions and squeeze-excitation run on this project's kernels. */
export function customOpsActive(): boolean {
  return override ?? state.active;
}

export function customOpsState(): CustomOpsState {
  return state;
}

/** Tests: run TensorFlow's own path (false) or the loaded kernels (true; only if loaded); null restores. */
export function overrideCustomOps(active: boolean | null): void {
  if (active === true && !state.active) throw new Error(`overrideCustomOps(true): the kernels are not loaded (${state.reason})`);
  override = active;
}

const NOT_BUILT = "not built (an engine from before them, or not x86-64): `make native ARGS=--force` builds them";

/** Which addon to load here, or why none would be used. */
function chooseCustomOps(packageDir: string, env: NodeJS.ProcessEnv = process.env): { isa: KernelIsa; note: string } | { problem: string } {
  const setting = readEnvironment(env).BIAS_INIT_CUSTOM_OPS;
  if (setting !== null && !["0", "1", "avx2"].includes(setting)) throw new ConfigError(`BIAS_INIT_CUSTOM_OPS: "${setting}" is not 0, 1 or avx2; set one of them or unset it`);
  if (setting === "0") return { problem: "off (BIAS_INIT_CUSTOM_OPS=0): TensorFlow's own ops run" };
  const flags = cpuInfo().flags;
  if (!flags.has("avx2") || !flags.has("fma")) return { problem: "not used: this CPU lacks AVX2 or FMA; TensorFlow's own ops run" };
  const narrowed = flags.has("avx512f") && setting === "avx2";
  const isa: KernelIsa = flags.has("avx512f") && !narrowed ? "avx512" : "avx2";
  if (fs.existsSync(customOpsPath(packageDir, isa))) return { isa, note: narrowed ? ", BIAS_INIT_CUSTOM_OPS=avx2" : "" };
  // An engine built before the AVX-512 addon has only the AVX2 one, of an older version (stale below).
  return fs.existsSync(customOpsPath(packageDir)) ? { isa: "avx2", note: ", the AVX-512 addon is not built" } : { problem: NOT_BUILT };
}

/**
 * Loads the addon for the CPU engine in packageDir (once per process) and records the outcome.
 * A failure to load leaves TensorFlow's own ops in use and says why; only a bad BIAS_INIT_CUSTOM_OPS
 * stops a run (ConfigError).
 */
export function loadCustomOps(packageDir: string, env: NodeJS.ProcessEnv = process.env): CustomOpsState {
  const choice = chooseCustomOps(packageDir, env);
  if ("problem" in choice) {
    state = { active: false, isa: null, fixable: choice.problem === NOT_BUILT, reason: choice.problem };
    return state;
  }
  const file = customOpsPath(packageDir, choice.isa);
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const addon = require(file) as { ops?: string[]; version?: number; isa?: string };
    if (addon.version !== CUSTOM_OPS_VERSION) {
      state = { active: false, isa: null, fixable: true, reason: `stale build (kernels version ${addon.version}, this code wants ${CUSTOM_OPS_VERSION}): \`make native ARGS=--force\`` };
    } else if (addon.isa !== choice.isa) {
      state = { active: false, isa: null, fixable: true, reason: `${path.basename(file)} was built for ${addon.isa}, not ${choice.isa}: \`make native ARGS=--force\`` };
    } else {
      state = { active: true, isa: choice.isa, fixable: false, reason: `${choice.isa === "avx512" ? "AVX-512" : "AVX2/FMA"} kernels${choice.note} (${(addon.ops ?? []).join(", ")})` };
    }
  } catch (e) {
    state = { active: false, isa: null, fixable: true, reason: `failed to load (${(e as Error).message.split("\n")[0].slice(0, 160)}); TensorFlow's own ops run` };
  }
  return state;
}
