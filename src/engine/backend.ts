// Picks the fastest TF.js engine that actually works on this machine and says which one it is.
//
// Order: CUDA (the GPU build seeing a GPU) > native CPU (a tfjs-node binding) > pure JS. The native
// engines are the ones `make native` / `make native-gpu` build against TensorFlow 2.21's wheels
// (tools/native/build.sh); the stock npm packages are not candidates, since their libtensorflow 2.9
// download no longer serves anyone (docs/native.md). A package that merely `require`s is not proof:
// one without its binding loads too. So each candidate is judged by the backend that TF.js reports
// afterwards, and every error is caught.
import { runTool } from "./machine_facts";
import * as fs from "fs";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { UserError } from "../errors";
import { readEnvironment } from "../config";
import { nativeOps } from "../model/ops/native_backend";
import { fusedEvalProblem } from "../model/ops/native_eval";
import { loadCustomOps } from "./custom_ops";
import { PROJECT_ROOT } from "../util/runner";

export type BackendKind = "cuda" | "native-cpu" | "js";

export interface BackendInfo {
  kind: BackendKind;
  /** TF.js backend name: "tensorflow" (native) or "cpu" (pure JS). */
  tfBackend: string;
  /** Where the native binding came from, or null for pure JS. */
  source: string | null;
  device: string;
  tfjsVersion: string;
  /** libtensorflow's version for native backends. */
  tensorflowVersion: string | null;
  /** Why better candidates were not used (one line each). */
  skipped: string[];
  /** The NVIDIA GPUs `nvidia-smi -L` lists on this machine (empty: none, or no nvidia-smi). */
  visibleGpus: string[];
}

/** The repository root (util/runner.ts: under tsx or compiled alike). */
export { PROJECT_ROOT };

/** Where the native engines are built: BIAS_INIT_NATIVE_DIR, else <repo>/.native. */
export function nativeDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(readEnvironment(env).BIAS_INIT_NATIVE_DIR ?? path.join(PROJECT_ROOT, ".native"));
}

export interface BackendCandidate {
  label: string;
  /** Absolute path of the package folder handed to require. */
  id: string;
  gpuPackage: boolean;
}

/** The native engines initBackend tries, best first (pure JS comes after them). */
export function backendCandidates(env: NodeJS.ProcessEnv = process.env): BackendCandidate[] {
  const native = nativeDir(env);
  return [
    { label: ".native/tfjs-node-gpu (make native-gpu)", id: path.join(native, "tfjs-node-gpu"), gpuPackage: true },
    { label: ".native/tfjs-node (make native)", id: path.join(native, "tfjs-node"), gpuPackage: false },
  ];
}

export class BackendError extends UserError {
  override name = "BackendError";
}

const FORCE_VALUES = ["auto", "cuda", "native", "js"] as const;
type Forced = (typeof FORCE_VALUES)[number];

function readForced(value: string | undefined): Forced {
  const v = (value ?? "auto").trim().toLowerCase() || "auto";
  if (!(FORCE_VALUES as readonly string[]).includes(v)) {
    throw new BackendError(`BIAS_INIT_BACKEND: "${value}" is not an engine; use one of ${FORCE_VALUES.join(", ")}`);
  }
  return v as Forced;
}

function firstLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split("\n")[0].slice(0, 200);
}

let active: Promise<BackendInfo> | null = null;

/**
 * Activates the best working backend once per process and returns what it is. The environment
 * variable BIAS_INIT_BACKEND (auto | cuda | native | js) forces a choice; a forced backend that
 * cannot load is an error, never a silent fallback.
 */
export function initBackend(force: string | undefined = readEnvironment().BIAS_INIT_BACKEND ?? undefined): Promise<BackendInfo> {
  if (active === null) active = selectBackend(readForced(force));
  return active;
}

async function selectBackend(forced: Forced): Promise<BackendInfo> {
  // TF's C++ logging (absl/oneDNN banners) would land in every notebook output; errors still show.
  if (process.env.TF_CPP_MIN_LOG_LEVEL === undefined) process.env.TF_CPP_MIN_LOG_LEVEL = "2";
  // On a GPU, TF would otherwise reserve nearly all device memory when its context starts.
  if (process.env.TF_FORCE_GPU_ALLOW_GROWTH === undefined) process.env.TF_FORCE_GPU_ALLOW_GROWTH = "true";
  // TensorFlow's CPU memory from its BFC allocator, which keeps freed blocks for reuse, instead of
  // malloc, which hands every buffer over 32 MB back to the kernel when it is freed, so the next
  // one is faulted in again page by page. Measured on the CPU build (AMD EPYC guest, AVX2,
  // 240x240 batch 16, 3 alternating rounds, bench/env_ab.ts, 2026-12-03): 255,000-267,000 page
  // faults per training step -> 1,500-5,200, CPU seconds per step 7.3-9.0 -> 5.2-6.3, peak RSS
  // 3.5 -> 2.7 GB; at 32x32 peak RSS 0.89-0.92 -> 0.82-0.83 GB, speed within the noise. Read when
  // TensorFlow first allocates, so set before the library loads; a value already set wins. GPU
  // builds: only host memory is affected (UNTESTED there).
  if (process.env.TF_CPU_ALLOCATOR_USE_BFC === undefined) process.env.TF_CPU_ALLOCATOR_USE_BFC = "true";
  // PROD mode only silences TF.js warnings, notably the pure-JS "install our node backend" banner.
  tf.enableProdMode();
  const skipped: string[] = [];
  if (forced !== "js") {
    for (const c of backendCandidates()) {
      const result = await tryNative(c);
      if (typeof result === "string") {
        skipped.push(`${c.label}: ${result}`);
        continue;
      }
      if (forced === "cuda" && result.kind !== "cuda") {
        skipped.push(`${c.label}: loaded, but sees no GPU`);
        continue;
      }
      return { ...result, skipped, visibleGpus: visibleNvidiaGpus() };
    }
    if (forced !== "auto") {
      throw new BackendError(`BIAS_INIT_BACKEND=${forced} but no such backend loads:\n  ${skipped.join("\n  ")}\n` +
        `Run \`make native\` (or \`make native-gpu\` on a GPU machine) and \`make doctor\` (see docs/native.md).`);
    }
  }
  await tf.setBackend("cpu");
  await tf.ready();
  return {
    kind: "js", tfBackend: tf.getBackend(), source: null, device: "CPU (pure JavaScript)",
    tfjsVersion: tf.version.tfjs, tensorflowVersion: null, skipped, visibleGpus: visibleNvidiaGpus(),
  };
}

/** The lines `nvidia-smi -L` prints for each GPU ("GPU 0: NVIDIA ... (UUID: ...)"); none without a driver. */
export function visibleNvidiaGpus(): string[] {
  const r = runTool("nvidia-smi", ["-L"], 10_000);
  if (!r.ok) return [];
  return r.stdout.split("\n").map((l) => l.trim()).filter((l) => /^GPU \d+:/.test(l));
}

/**
 * When an NVIDIA GPU is visible but the engine is not CUDA: why, one line per candidate engine
 * (BackendInfo.skipped), for every run to print. Empty otherwise.
 */
export function unusedGpuLines(info: BackendInfo): string[] {
  if (info.kind === "cuda" || info.visibleGpus.length === 0) return [];
  const more = info.visibleGpus.length > 1 ? ` and ${info.visibleGpus.length - 1} more` : "";
  const tried = info.skipped.filter((s) => s.includes("gpu"));
  return [`note: an NVIDIA GPU is visible (${info.visibleGpus[0]}${more}) but no CUDA engine loaded, so this run uses the CPU; the GPU engines tried:`,
    ...(tried.length > 0 ? tried.map((s) => `  ${s}`) : ["  none (BIAS_INIT_BACKEND chose another engine)"]),
    "  to use the GPU, build the CUDA engine: `make native-gpu` (docs/native.md, GPU variant)"];
}

interface NodeBackendLike {
  isUsingGpuDevice?: boolean;
  getTFVersion?: () => string;
  binding?: { TF_Version?: string };
}

/** Loads one native candidate; returns the info, or the reason it was skipped. */
async function tryNative(c: BackendCandidate): Promise<Omit<BackendInfo, "skipped" | "visibleGpus"> | string> {
  if (!fs.existsSync(path.join(c.id, "package.json"))) return "not built";
  try {
    require(c.id);
  } catch (e) {
    return `built, but loading it failed: ${firstLine(e)}`;
  }
  try {
    // The package registers "tensorflow" with the engine of the @tensorflow/tfjs it resolved; if
    // that is not our instance, our engine never sees it and this check fails, as it should.
    if (tf.findBackendFactory("tensorflow") === null) return "loaded, but registered no 'tensorflow' backend with this project's TF.js";
    if (!(await tf.setBackend("tensorflow"))) return "loaded, but its 'tensorflow' backend failed to initialize";
    if (tf.getBackend() !== "tensorflow") return `loaded, but the active backend is '${tf.getBackend()}'`;
    tf.tidy(() => tf.add(tf.scalar(1), tf.scalar(1)).dataSync());
  } catch (e) {
    return firstLine(e);
  }
  const backend = tf.backend() as unknown as NodeBackendLike;
  const gpu = c.gpuPackage && backend.isUsingGpuDevice === true;
  // Evaluation on the CPU engine runs ops the stock binding cannot set up (model/ops/native_eval.ts):
  // an engine built before tools/native/patch_binding.py stops here, before anything is written.
  const nb = nativeOps();
  const stale = gpu || nb === null ? null : fusedEvalProblem(nb);
  if (stale !== null) {
    throw new BackendError(`${c.label} cannot set the list attributes evaluation uses (${stale}): it was built before this project ` +
      "patched the binding; rebuild it with `make native ARGS=--force` (about a minute)");
  }
  let tensorflowVersion: string | null = null;
  try {
    tensorflowVersion = backend.getTFVersion?.() ?? backend.binding?.TF_Version ?? null;
  } catch {
    tensorflowVersion = null;
  }
  // The CPU engine's own kernels (engine/custom_ops.ts); the GPU package has none.
  const ops = c.gpuPackage ? null : loadCustomOps(c.id);
  return {
    kind: gpu ? "cuda" : "native-cpu",
    tfBackend: "tensorflow",
    source: c.label,
    device: gpu ? "GPU (CUDA)" : `CPU (native libtensorflow${c.gpuPackage ? " from the GPU package, no GPU visible" : ""}` +
      `${ops?.active ? `, this project's ${ops.isa === "avx512" ? "AVX-512" : "AVX2"} kernels` : ""})`,
    tfjsVersion: tf.version.tfjs,
    tensorflowVersion,
  };
}

/** The one line every run prints: engine, device, versions. */
export function backendLine(info: BackendInfo): string {
  const name = info.kind === "cuda" ? "CUDA" : info.kind === "native-cpu" ? "native CPU" : "pure JS";
  const parts = [
    `backend: ${name} (tfjs '${info.tfBackend}'${info.source ? ` via ${info.source}` : ""})`,
    `device: ${info.device}`,
    `tfjs ${info.tfjsVersion}`,
    ...(info.tensorflowVersion ? [`libtensorflow ${info.tensorflowVersion}`] : []),
    `node ${process.version}`,
  ];
  return parts.join(" | ");
}
