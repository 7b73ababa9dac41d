// Runs one of the helper scripts of test/helpers/ in a child process on a forced backend
// (BIAS_INIT_BACKEND=<backend>): each backend needs its own process. Returns the script's last
// stdout line parsed as JSON (`env`: more of the child's environment), or, when the child fails (no such backend here, say), the first
// lines of its stderr as a string.
import { spawnSync } from "child_process";
import * as path from "path";

const ROOT = path.resolve(__dirname, "../..");

export function runOnBackend<T>(script: string, backend: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): T | string {
  const r = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "test/helpers", script), ...args],
    { cwd: ROOT, env: { ...process.env, ...env, BIAS_INIT_BACKEND: backend }, encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) return r.stderr.trim().split("\n").slice(0, 3).join(" | ");
  return JSON.parse(r.stdout.trim().split("\n").pop() as string) as T;
}
