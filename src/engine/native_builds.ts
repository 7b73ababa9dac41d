// The state of the native engine builds on disk (tools/native/build.sh): built, failed (at which
// step), or absent; and for the GPU build, whether its libraries resolve: `ldd` on the binding and
// TensorFlow's libraries, and a search for the CUDA libraries TensorFlow dlopens at run time, in
// the places the dynamic loader would look (LD_LIBRARY_PATH, the libraries' run paths, the system).
import * as fs from "fs";
import * as path from "path";
import { readEnvironment } from "../config";
import { nativeDir } from "./backend";
import { runTool } from "./machine_facts";

export type Variant = "cpu" | "gpu";

export interface BuildState {
  variant: Variant;
  packageDir: string;
  /** .native/READY or READY-gpu, parsed; null when absent or unreadable. */
  ready: Record<string, unknown> | null;
  /** The binding file, from READY or found in the package; null when none. */
  binding: string | null;
  /** .native/FAILED-<variant>: the step that failed last time and what to do. */
  failed: { step: string; hint: string } | null;
}

const PACKAGE_DIR: Record<Variant, string> = { cpu: "tfjs-node", gpu: "tfjs-node-gpu" };
const READY_FILE: Record<Variant, string> = { cpu: "READY", gpu: "READY-gpu" };

function readJson(file: string): Record<string, unknown> | null {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch {
    return null;
  }
}

function findBinding(packageDir: string): string | null {
  const lib = path.join(packageDir, "lib");
  if (!fs.existsSync(lib)) return null;
  for (const sub of fs.readdirSync(lib).sort().reverse()) {
    const file = path.join(lib, sub, "tfjs_binding.node");
    if (fs.existsSync(file)) return file;
  }
  return null;
}

export function buildState(variant: Variant, env: NodeJS.ProcessEnv = process.env): BuildState {
  const root = nativeDir(env);
  const packageDir = path.join(root, PACKAGE_DIR[variant]);
  const ready = readJson(path.join(root, READY_FILE[variant]));
  const fromReady = typeof ready?.bindingPath === "string" && fs.existsSync(ready.bindingPath) ? ready.bindingPath : null;
  let failed: BuildState["failed"] = null;
  try {
    const [step, hint] = fs.readFileSync(path.join(root, `FAILED-${variant}`), "utf8").split("\n");
    failed = { step: step ?? "?", hint: hint ?? "" };
  } catch {
    failed = null;
  }
  return { variant, packageDir, ready, binding: fromReady ?? findBinding(packageDir), failed };
}

/**
 * What TensorFlow 2.21 dlopens to use a GPU (tsl's dso_loader: the driver, the runtime, cuBLAS(Lt),
 * cuFFT, cuSOLVER, cuSPARSE, cuDNN), plus nvJitLink which cuSPARSE/cuSOLVER 12 link against.
 * libcuda.so.1 comes with the NVIDIA driver, the others from the nvidia-*-cu12 wheels.
 */
export const CUDA_SONAMES = [
  "libcuda.so.1", "libcudart.so.12", "libcublas.so.12", "libcublasLt.so.12", "libcufft.so.11",
  "libcusolver.so.11", "libcusparse.so.12", "libcudnn.so.9", "libnvJitLink.so.12",
] as const;

/** The libraries whose run paths the loader uses for TensorFlow's dlopen (the callers). */
const TF_LIBS = ["libtensorflow_framework.so.2", "libtensorflow_cc.so.2"];

export interface GpuBuildCheck {
  /** `ldd` lines "<lib> => not found" for the binding and TensorFlow's libraries, or why ldd could not run. */
  unresolved: string[];
  lddError: string | null;
  /** DT_RUNPATH/DT_RPATH entries of TensorFlow's libraries, $ORIGIN expanded; null when readelf is missing. */
  runpath: string[] | null;
  cudaLibraries: Array<{ soname: string; foundIn: string | null }>;
  /** The build's cuda-env.sh and whether this process's environment has it loaded. */
  cudaEnv: { file: string; loaded: boolean } | null;
}

/** The run path entries of one ELF file, via `readelf -d`; null when readelf is not installed. */
export function readRunpath(file: string): string[] | null {
  const r = runTool("readelf", ["-d", file]);
  if (r.missing) return null;
  const entries: string[] = [];
  for (const m of r.stdout.matchAll(/\((?:RUNPATH|RPATH)\)[^[]*\[([^\]]*)\]/g)) {
    for (const e of m[1].split(":")) if (e) entries.push(e.replace(/\$ORIGIN|\$\{ORIGIN\}/g, path.dirname(file)));
  }
  return entries;
}

/** The folders ld.so searches after LD_LIBRARY_PATH and run paths: /etc/ld.so.conf (with includes), then the defaults. */
export function systemLibraryDirs(confFile = "/etc/ld.so.conf"): string[] {
  const dirs: string[] = [];
  const readConf = (file: string, depth: number): void => {
    let text = "";
    try {
      text = fs.readFileSync(file, "utf8");
    } catch {
      return;
    }
    for (const raw of text.split("\n")) {
      const line = raw.replace(/#.*/, "").trim();
      if (line === "") continue;
      const include = line.match(/^include\s+(.+)$/);
      if (include && depth < 4) {
        const pattern = include[1].trim();
        const dir = path.dirname(pattern);
        const re = new RegExp(`^${path.basename(pattern).replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`);
        const names = fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => re.test(n)).sort() : [];
        for (const n of names) readConf(path.join(dir, n), depth + 1);
      } else if (!include) dirs.push(line);
    }
  };
  readConf(confFile, 0);
  return [...dirs, "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"];
}

function lddNotFound(files: string[]): { unresolved: string[]; error: string | null } {
  const unresolved: string[] = [];
  for (const file of files) {
    const r = runTool("ldd", [file]);
    if (r.missing) return { unresolved, error: "ldd is not installed" };
    if (!r.ok && !/not found/.test(r.stdout)) return { unresolved, error: `ldd ${file}: ${(r.stderr || r.stdout).trim().split("\n")[0]}` };
    for (const line of r.stdout.split("\n")) {
      const m = line.match(/^\s*(\S+)\s+=>\s+not found/);
      if (m) unresolved.push(`${m[1]} (needed by ${path.basename(file)})`);
    }
  }
  return { unresolved: [...new Set(unresolved)], error: null };
}

/** Checks the GPU build's libraries the way the loader will need them; `env` supplies LD_LIBRARY_PATH. */
export function checkGpuBuild(state: BuildState, env: NodeJS.ProcessEnv = process.env): GpuBuildCheck {
  const libDir = path.join(state.packageDir, "deps", "lib");
  const tfLibs = TF_LIBS.map((n) => path.join(libDir, n)).filter((f) => fs.existsSync(f));
  const ldd = lddNotFound([...(state.binding ? [state.binding] : []), ...tfLibs]);
  let runpath: string[] | null = [];
  for (const lib of tfLibs) {
    const entries = readRunpath(lib);
    runpath = entries === null || runpath === null ? null : [...runpath, ...entries];
  }
  const e = readEnvironment(env);
  const searched = [...(e.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean), ...(runpath ?? []), ...systemLibraryDirs()];
  const cudaLibraries = CUDA_SONAMES.map((soname) => ({
    soname, foundIn: searched.find((dir) => fs.existsSync(path.join(dir, soname))) ?? null,
  }));
  const envFile = path.join(state.packageDir, "cuda-env.sh");
  const cudaEnv = fs.existsSync(envFile) ? { file: envFile, loaded: e.BIAS_INIT_CUDA_ENV !== null && samePath(e.BIAS_INIT_CUDA_ENV, envFile) } : null;
  return { unresolved: ldd.unresolved, lddError: ldd.error, runpath, cudaLibraries, cudaEnv };
}

/** True when both name the same file (symlinks resolved). */
export function samePath(a: string, b: string): boolean {
  try {
    return fs.realpathSync(a) === fs.realpathSync(b);
  } catch {
    return path.resolve(a) === path.resolve(b);
  }
}
