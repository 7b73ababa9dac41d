// The GPU build's cuda-env.sh (CUDA library paths for TensorFlow's dlopen) must be in the
// environment before node starts: the dynamic loader reads LD_LIBRARY_PATH once, at start-up. Make
// targets and the Jupyter kernel launcher source it (tools/native/engine-env.sh); a CLI started
// directly runs itself again through it.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { readEnvironment } from "../config";
import { nativeDir } from "./backend";

/**
 * The cuda-env.sh to load first: the GPU build has one, the engine is not forced to pure JS, and
 * none is loaded yet (the file sets BIAS_INIT_CUDA_ENV, so this never loops). Else null.
 */
export function cudaEnvToLoad(env: NodeJS.ProcessEnv = process.env): string | null {
  const e = readEnvironment(env);
  if ((e.BIAS_INIT_BACKEND ?? "auto").toLowerCase() === "js" || e.BIAS_INIT_CUDA_ENV !== null) return null;
  const file = path.join(nativeDir(env), "tfjs-node-gpu", "cuda-env.sh");
  return fs.existsSync(file) ? file : null;
}

/** Runs this same command again with `file` sourced first; returns its exit status. */
export function rerunWithCudaEnv(file: string): number {
  console.error(`[engine] loading ${file} (CUDA library paths) and starting again`);
  // Ctrl-C reaches both processes; this one waits for the child to stop cleanly instead of dying first.
  const ignore = (): void => undefined;
  process.on("SIGINT", ignore);
  process.on("SIGTERM", ignore);
  const r = spawnSync("bash", ["-c", 'source "$0" && exec "$@"', file, process.execPath, ...process.execArgv, ...process.argv.slice(1)],
    { stdio: "inherit" });
  process.off("SIGINT", ignore);
  process.off("SIGTERM", ignore);
  if (r.error) throw r.error;
  return r.status ?? 1;
}
