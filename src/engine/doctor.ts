// `make doctor`: what this machine has and lacks for each engine, one diagnosis and the exact next
// command. It gathers the facts (machine_facts.ts, native_builds.ts, which engine initBackend picks)
// and reads them in order: GPU present? driver new enough for CUDA 12? GPU build there, its
// libraries resolving, TensorFlow seeing the GPU? Else the CPU engine; then data and weights.
import * as fs from "fs";
import * as path from "path";
import { defaultDataDir, readEnvironment } from "../config";
import { resolveDataSource } from "../data/prepare";
import { BATCH_DIR_NAME, batchDirProblem } from "../data/cifar10";
import { DEFAULT_WEIGHTS_DIR, IMAGENET_WEIGHTS } from "../model/pretrained";
import { BackendInfo, backendCandidates, backendLine, initBackend, nativeDir, PROJECT_ROOT } from "./backend";
import { nativeOps } from "../model/ops/native_backend";
import { TRAINING_FOLD_MIN_POSITIONS } from "../model/ops/se_projection_fold";
import { oneDnnKernels } from "../model/ops/native_eval";
import { cpuInfo, hasAvx512, tensorflowBool, tensorflowOneDnnOn } from "../util/cpu_info";
import { NvidiaSmiFacts, queryNvidiaSmi, SystemFacts, systemFacts, versionAtLeast } from "./machine_facts";
import { BuildState, buildState, checkGpuBuild, GpuBuildCheck } from "./native_builds";
import { customOpsState } from "./custom_ops";
import { SignalGuardState, signalGuardState } from "./signal_guard";

/**
 * The oldest Linux driver that runs CUDA 12 code: 525.60.13 (CUDA 12.x minor version compatibility,
 * NVIDIA's CUDA Toolkit release notes and docs.nvidia.com/deploy/cuda-compatibility; TensorFlow's
 * pip install page asks for the same).
 */
export const MIN_DRIVER_CUDA12 = "525.60.13";
/** CUDA 12.5 shipped with the 555 driver branch; older 12.x drivers run it without PTX JIT. */
export const DRIVER_BRANCH_CUDA_12_5 = "555";
/** TensorFlow 2.21 is built for sm_60, sm_70, sm_80, sm_89 and compute_90 (its .bazelrc). */
export const MIN_COMPUTE_CAPABILITY = "6.0";

export type Level = "ok" | "warn" | "error";
export interface Finding {
  level: Level;
  text: string;
}

export interface DoctorReport {
  system: SystemFacts;
  nvidia: NvidiaSmiFacts;
  engine: { forced: string; active: BackendInfo | null; line: string | null; error: string | null; notTried: string[]; signalGuard: SignalGuardState | null };
  builds: { nativeDir: string; cpu: BuildState; gpu: BuildState; gpuCheck: GpuBuildCheck | null };
  data: { dir: string; cifar10: string | null; weights: { file: string; present: boolean } };
  findings: Finding[];
  next: string;
}

async function engineFacts(): Promise<DoctorReport["engine"]> {
  const forced = readEnvironment().BIAS_INIT_BACKEND ?? "auto";
  try {
    const active = await initBackend();
    const notTried = active.source === null ? [] : backendCandidates()
      .map((c) => c.label).filter((label) => label !== active.source && !active.skipped.some((s) => s.startsWith(label)))
      .map((label) => `${label}: not tried (a better engine loaded)`);
    return { forced, active, line: backendLine(active), error: null, notTried, signalGuard: active.kind === "js" ? null : signalGuardState(active.kind) };
  } catch (e) {
    return { forced, active: null, line: null, error: (e as Error).message, notTried: [], signalGuard: null };
  }
}

function dataFacts(dataDir: string): DoctorReport["data"] {
  const cifarDir = path.join(dataDir, BATCH_DIR_NAME);
  const source = resolveDataSource({ source: "auto", dir: dataDir });
  const cifar10 = source === "cifar10" ? null : batchDirProblem(cifarDir) ?? `${cifarDir} holds the synthetic stand-in`;
  const w = IMAGENET_WEIGHTS.b1;
  const local = w ? readEnvironment()[w.envVar] : null;
  const file = local ?? path.join(DEFAULT_WEIGHTS_DIR, w?.file ?? "?");
  return { dir: dataDir, cifar10, weights: { file, present: fs.existsSync(file) } };
}

/** Gathers every fact and the diagnosis. Loads the engine like a run would (never builds one). */
export async function runDoctor(opts: { indexTimeoutMs?: number } = {}): Promise<DoctorReport> {
  const dir = nativeDir();
  const dataDir = defaultDataDir();
  const system = await systemFacts(PROJECT_ROOT, [
    { what: "native engines and their wheel cache", path: dir },
    { what: "data (CIFAR-10)", path: path.resolve(dataDir) },
    { what: "ImageNet weights", path: path.resolve(DEFAULT_WEIGHTS_DIR) },
  ], opts.indexTimeoutMs);
  const nvidia = queryNvidiaSmi();
  const engine = await engineFacts();
  const cpu = buildState("cpu");
  const gpu = buildState("gpu");
  const gpuCheck = fs.existsSync(path.join(gpu.packageDir, "package.json")) ? checkGpuBuild(gpu) : null;
  const partial = { system, nvidia, engine, builds: { nativeDir: dir, cpu, gpu, gpuCheck }, data: dataFacts(dataDir) };
  return { ...partial, ...diagnose(partial) };
}

type Facts = Omit<DoctorReport, "findings" | "next">;

const failedText = (b: BuildState): string => (b.failed ? `the last build failed at step ${b.failed.step}: ${b.failed.hint}` : "");

/** The findings, worst first within each topic, and the one command to run next. */
export function diagnose(f: Facts): { findings: Finding[]; next: string } {
  const findings: Finding[] = [];
  const add = (level: Level, text: string): void => {
    findings.push({ level, text });
  };
  const active = f.engine.active;
  let next: string | null = null;
  const setNext = (cmd: string): void => {
    next ??= cmd;
  };

  // 1. The GPU, when there is one.
  const gpus = f.nvidia.gpus;
  if (gpus.length === 0) {
    add("ok", `no NVIDIA GPU: ${f.nvidia.found ? f.nvidia.error ?? "nvidia-smi lists none" : "nvidia-smi is not on PATH"}; the CPU engine is the one to use`);
  } else {
    const g = gpus[0];
    add("ok", `NVIDIA GPU: ${gpus.map((x) => `${x.name} (compute ${x.computeCapability ?? "?"}, ${x.memoryMiB ?? "?"} MiB)`).join(", ")}; driver ${g.driver}`);
    if (!versionAtLeast(g.driver, MIN_DRIVER_CUDA12)) {
      add("error", `driver ${g.driver} is too old for CUDA 12: TensorFlow 2.21's GPU build needs ${MIN_DRIVER_CUDA12} or newer on Linux`);
      setNext(`update the NVIDIA driver to ${MIN_DRIVER_CUDA12} or newer (the ${DRIVER_BRANCH_CUDA_12_5} branch matches CUDA 12.5), then: make native-gpu`);
    } else if (!versionAtLeast(g.driver, DRIVER_BRANCH_CUDA_12_5)) {
      add("warn", `driver ${g.driver} runs CUDA 12.5 code through minor-version compatibility only (no PTX JIT); a ${DRIVER_BRANCH_CUDA_12_5}.x or newer driver is safer`);
    }
    if (g.computeCapability !== null && !versionAtLeast(g.computeCapability, MIN_COMPUTE_CAPABILITY)) {
      add("error", `compute capability ${g.computeCapability}: TensorFlow 2.21 has GPU code for ${MIN_COMPUTE_CAPABILITY} and newer only`);
      setNext("this GPU cannot run the GPU engine; use the CPU one: make native");
    }
    diagnoseGpuBuild(f, add, setNext);
  }

  // 2. The engine that loads now.
  if (f.engine.error !== null) {
    add("error", `BIAS_INIT_BACKEND=${f.engine.forced} but that engine does not load: ${f.engine.error.split("\n")[0]}`);
  } else if (active !== null) {
    const onPurpose = f.engine.forced !== "auto" ? ` (BIAS_INIT_BACKEND=${f.engine.forced})` : "";
    add(active.kind === "js" && f.engine.forced !== "js" ? "warn" : "ok", `active ${f.engine.line}${onPurpose}`);
    for (const s of [...active.skipped, ...f.engine.notTried]) add("ok", `  ${s}`);
    if (active.kind === "native-cpu") {
      const threads = readEnvironment().TF_NUM_INTRAOP_THREADS;
      add("ok", `TensorFlow's intra-op threads: ${threads === null ? "its default (one per core)" : `TF_NUM_INTRAOP_THREADS=${threads}`}; ` +
        "on 2 cores, 1 trained 32x32 batches 1.5x faster on one machine kind (make bench-compare ARGS=\"--threads 0,1\" measures it here)");
      const nb = nativeOps();
      if (nb !== null && oneDnnKernels(nb)) add("ok", "evaluation: convolution + BatchNorm + SiLU as one oneDNN op (1x1 ones without SiLU or under 4x4: _FusedMatMul), squeeze-excitation's gate folded into the projection as oneDNN's batched product where that measured faster (src/model/ops/native_eval.ts)");
      else add("warn", "evaluation runs TensorFlow's Eigen ops, not oneDNN's fused convolutions (TF_ENABLE_ONEDNN_OPTS=0, or a build without them): " +
        "about 1.2x slower at 240x240 on one machine kind, and its numbers differ from oneDNN's at float round-off");
      const cpu = cpuInfo();
      const oneDnn = tensorflowOneDnnOn();
      add("ok", `CPU: ${cpu.model ?? "unknown model"}, ${hasAvx512() ? "with" : "without"} AVX-512; TensorFlow's oneDNN ${oneDnn ? "on" : "off"}` +
        `${process.env.TF_ENABLE_ONEDNN_OPTS !== undefined ? ` (TF_ENABLE_ONEDNN_OPTS=${process.env.TF_ENABLE_ONEDNN_OPTS})` : " (its default for this CPU: on only with AVX-512 VNNI/BF16, AVX-VNNI or AMX)"}. ` +
        "TensorFlow's own kernels use neither AVX2 nor FMA, so this project's cover training's BatchNorm + SiLU, depthwise convolutions and squeeze-excitation (next line; docs/performance.md)");
      const ops = customOpsState();
      add(ops.fixable ? "warn" : "ok", `training BatchNorm + SiLU, depthwise convolutions, squeeze-excitation: ${ops.active ? `this project's ${ops.reason}` : ops.reason}` +
        `${!ops.fixable ? "" : "; on an AVX2 guest their BatchNorm kernels alone took 240x240 training from 5.0-5.4 to 7.3-8.8 img/s (docs/performance.md, items 18-19)"}` +
        `${ops.active && nb !== null && oneDnnKernels(nb) ? `; squeeze-excitation's gate folded into the projection's per-sample weights from ${TRAINING_FOLD_MIN_POSITIONS} positions (30x30) up, as oneDNN's batched product (src/model/ops/se_projection_fold.ts)` : ""}`);
      if (tensorflowBool(process.env.TF_CPU_ALLOCATOR_USE_BFC) === true) add("ok", `TensorFlow's CPU memory: its BFC allocator (TF_CPU_ALLOCATOR_USE_BFC=${process.env.TF_CPU_ALLOCATOR_USE_BFC}; the engine sets true unless set)`);
      else add("warn", `TensorFlow's CPU memory: malloc (TF_CPU_ALLOCATOR_USE_BFC=${process.env.TF_CPU_ALLOCATOR_USE_BFC}): on one machine kind ~260,000 page faults per ` +
        "240x240 training step and 3.5 GB at peak, against 1,500-5,200 and 2.7 GB with it; unset it to get the default");
    }
    if (f.engine.signalGuard !== null) add(f.engine.signalGuard.on ? "ok" : "warn", `signal guard: ${f.engine.signalGuard.line}`);
    if (active.kind === "js" && f.engine.forced !== "js") {
      add("warn", `pure JS trains EfficientNet-B1 about 6x slower than the native CPU engine${f.builds.cpu.failed ? `; ${failedText(f.builds.cpu)}` : ""}`);
      setNext(f.builds.cpu.failed ? `${f.builds.cpu.failed.hint}; then: make native` : "make native   (make run does it on first use)");
    }
  }

  // 3. Data and weights.
  if (f.data.cifar10 !== null) {
    add("warn", `CIFAR-10 is not in place (${f.data.cifar10}); runs use the synthetic stand-in`);
    setNext("make data");
  } else add("ok", `CIFAR-10 in place under ${f.data.dir}/`);
  if (!f.data.weights.present) {
    add("warn", `ImageNet weights missing (${f.data.weights.file}): the ImageNet half of the grid reports "unavailable"`);
    setNext("make weights");
  } else add("ok", `ImageNet weights in place: ${f.data.weights.file}`);
  const preset = active?.kind === "cuda" ? "full" : "quick";
  setNext(active?.kind === "cuda" ? "bash tools/gpu/check.sh   (then: make run, which runs the full preset)" : `make run ARGS=--dry-run   (what \`make run\` would cost with preset ${preset})`);
  return { findings, next: next as unknown as string };
}

function diagnoseGpuBuild(f: Facts, add: (l: Level, t: string) => void, setNext: (cmd: string) => void): void {
  const b = f.builds.gpu;
  const check = f.builds.gpuCheck;
  if (check === null) {
    if (b.failed) {
      add("error", `GPU engine not built: ${failedText(b)}`);
      setNext(`${b.failed.hint}; then: make native-gpu`);
    } else {
      add("warn", "GPU engine not built yet");
      setNext("make native-gpu   (make run does it on first use)");
    }
    return;
  }
  add("ok", `GPU build: ${b.packageDir}${b.ready ? "" : " (no READY-gpu: its build did not finish)"}`);
  if (check.lddError) add("warn", `cannot check the binding's libraries: ${check.lddError}`);
  if (check.unresolved.length > 0) {
    add("error", `libraries of the binding that do not resolve (ldd): ${check.unresolved.join(", ")}`);
    setNext("make native-gpu ARGS=--force");
  }
  if (check.runpath === null) add("warn", "readelf not found: the run paths of TensorFlow's libraries were not checked (Debian: apt-get install binutils)");
  else add("ok", `run paths of TensorFlow's libraries: ${check.runpath.filter((p) => p.includes("/nvidia/")).length} CUDA wheel folders`);
  const missing = check.cudaLibraries.filter((l) => l.foundIn === null).map((l) => l.soname);
  if (missing.length > 0) {
    add("error", `CUDA libraries TensorFlow dlopens that are not found (LD_LIBRARY_PATH, the run paths, the system): ${missing.join(", ")}`);
    if (missing.length === 1 && missing[0] === "libcuda.so.1") setNext("install the NVIDIA driver's user-space library libcuda.so.1 (it comes with the driver), then: make doctor");
    else if (check.cudaEnv && !check.cudaEnv.loaded) setNext(`source ${check.cudaEnv.file}   (make targets, the kernel launcher and the CLI do this), then: make doctor`);
    else setNext("make native-gpu ARGS=--force   (unpacks the pinned CUDA wheels again)");
  } else add("ok", `CUDA libraries found: ${check.cudaLibraries.map((l) => l.soname).join(", ")}`);
  if (check.cudaEnv) add("ok", `${check.cudaEnv.file}: ${check.cudaEnv.loaded ? "loaded in this environment" : "not loaded in this environment"}`);
  const active = f.engine.active;
  if (active !== null && active.kind !== "cuda" && f.engine.forced !== "js") {
    add("error", "the GPU build is there, but TensorFlow sees no GPU: runs would use the CPU");
    setNext("TF_CPP_MIN_LOG_LEVEL=0 make doctor   (TensorFlow then prints why it skips the GPU)");
  } else if (active?.kind === "cuda") add("ok", "TensorFlow sees the GPU: the CUDA engine is active");
}

const MARK: Record<Level, string> = { ok: "  ", warn: "! ", error: "X " };

/** The report as text, for pasting into a bug report. */
export function doctorText(r: DoctorReport): string {
  const s = r.system;
  const gb = (x: number | null): string => (x === null ? "?" : `${x.toFixed(1)} GiB`);
  const lines = [
    "bias-init doctor",
    `machine: ${s.os} | kernel ${s.kernel} ${s.arch} | glibc ${s.glibc ?? "?"} | ${s.cpus} CPUs, ${gb(s.memoryGiB)} memory`,
    `node ${s.node} (N-API ${s.napi}) | python ${s.python.version ?? `not found (${s.python.path})`} at ${s.python.path}`,
    `pip indexes: ${s.pipIndexes.length === 0 ? "none found" : s.pipIndexes.map((i) => `${i.url} (${i.reachable ? "reachable" : "UNREACHABLE"}: ${i.detail})`).join(", ")}`,
    ...s.disk.map((d) => `disk free for ${d.what} (${d.path}): ${gb(d.freeGiB)}`),
    `native engines: ${r.builds.nativeDir} | CPU build ${r.builds.cpu.ready ? "ready" : r.builds.cpu.failed ? "FAILED" : "absent"} | GPU build ${r.builds.gpu.ready ? "ready" : r.builds.gpu.failed ? "FAILED" : r.builds.gpuCheck ? "incomplete" : "absent"}`,
    "",
    ...r.findings.map((f) => `${MARK[f.level]}${f.text}`),
    "",
    `next: ${r.next}`,
  ];
  return lines.join("\n");
}
