// This project's own TensorFlow kernels with AVX2/FMA code (tools/native/ops/: training BatchNorm +
// SiLU, the depthwise convolution and squeeze-excitation's passes, forward and backward), which
// `make native` builds into a Node addon next to the CPU engine. Loading the addon registers the
// ops in the libtensorflow the engine loaded; the engine then runs them by name
// (model/ops/native_batchnorm.ts, native_conv.ts, squeeze_excitation.ts).
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
export const CUSTOM_OPS_VERSION = 4;

/** The addon's place inside a CPU engine's package folder (tools/native/build.sh step 4). */
export function customOpsPath(packageDir: string): string {
  return path.join(packageDir, "bias-ops", "bias_init_ops.node");
}

export interface CustomOpsState {
  active: boolean;
  /** Not active, and `make native ARGS=--force` would change that (not built, stale, failed to load). */
  fixable: boolean;
  /** One line: what runs and why (for the backend line and `make doctor`). */
  reason: string;
}

let state: CustomOpsState = { active: false, fixable: false, reason: "not loaded (the engine is not the CPU package of `make native`)" };
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

/** Why the addon would not be used here, before loading it; null when it would be. */
function customOpsProblem(packageDir: string, env: NodeJS.ProcessEnv = process.env): string | null {
  const setting = readEnvironment(env).BIAS_INIT_CUSTOM_OPS;
  if (setting !== null && setting !== "0" && setting !== "1") throw new ConfigError(`BIAS_INIT_CUSTOM_OPS: "${setting}" is not 0 or 1; set one of them or unset it`);
  if (setting === "0") return "off (BIAS_INIT_CUSTOM_OPS=0): TensorFlow's own ops run";
  const flags = cpuInfo().flags;
  if (!flags.has("avx2") || !flags.has("fma")) return "not used: this CPU lacks AVX2 or FMA; TensorFlow's own ops run";
  if (!fs.existsSync(customOpsPath(packageDir))) return NOT_BUILT;
  return null;
}

/**
 * Loads the addon for the CPU engine in packageDir (once per process) and records the outcome.
 * A failure to load leaves TensorFlow's own ops in use and says why; only a bad BIAS_INIT_CUSTOM_OPS
 * stops a run (ConfigError).
 */
export function loadCustomOps(packageDir: string, env: NodeJS.ProcessEnv = process.env): CustomOpsState {
  const problem = customOpsProblem(packageDir, env);
  if (problem !== null) {
    state = { active: false, fixable: problem === NOT_BUILT, reason: problem };
    return state;
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const addon = require(customOpsPath(packageDir)) as { ops?: string[]; version?: number };
    if (addon.version !== CUSTOM_OPS_VERSION) {
      state = { active: false, fixable: true, reason: `stale build (kernels version ${addon.version}, this code wants ${CUSTOM_OPS_VERSION}): \`make native ARGS=--force\`` };
    } else {
      state = { active: true, fixable: false, reason: `AVX2/FMA kernels (${(addon.ops ?? []).join(", ")})` };
    }
  } catch (e) {
    state = { active: false, fixable: true, reason: `failed to load (${(e as Error).message.split("\n")[0].slice(0, 160)}); TensorFlow's own ops run` };
  }
  return state;
}
