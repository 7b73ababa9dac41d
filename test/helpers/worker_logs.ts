// Shared by the worker tests (local workers, the notebook's detached workers, the Slurm array): what
// the workers' event logs (`<results>/workers/*.jsonl`) say each of them did, and the CLI started
// with --workers on a config file.
import { spawn, ChildProcess } from "child_process";
import * as fs from "fs";
import * as path from "path";
import type { WorkerLine, WorkerHello } from "../../src/experiment/worker_log";
import { listWorkerLogs } from "../../src/experiment/worker_log";
import { unitLabel } from "../../src/experiment/store";
import { pidAlive } from "../../src/util/leftovers";
import { compiledCommand } from "../../src/util/runner";

export const ROOT = path.resolve(__dirname, "../..");

export interface WorkerLog {
  file: string;
  hello: WorkerHello | null;
  lines: WorkerLine[];
}

/** Every worker log under `resultsDir`, parsed. */
export function workerLogs(resultsDir: string): WorkerLog[] {
  return listWorkerLogs(resultsDir).map((file) => {
    const lines = fs.readFileSync(file, "utf8").split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as WorkerLine);
    return { file, hello: (lines.find((l) => l.type === "hello") as WorkerHello | undefined) ?? null, lines };
  });
}

/** `unit label` -> how many times workers started it, over all logs. */
export function unitStarts(logs: WorkerLog[]): Map<string, number> {
  const starts = new Map<string, number>();
  for (const log of logs) for (const l of log.lines) if (l.type === "unit-start") starts.set(unitLabel(l.unit), (starts.get(unitLabel(l.unit)) ?? 0) + 1);
  return starts;
}

/** `unit label epoch e` of every epoch row the workers logged, over all logs (sorted, duplicates kept). */
export function epochRows(logs: WorkerLog[]): string[] {
  return logs.flatMap((log) => log.lines.flatMap((l) => (l.type === "epoch" ? [`${unitLabel(l.unit)} epoch ${l.record.epoch}`] : []))).sort();
}

/** Kills (SIGKILL) every worker of `resultsDir` whose process still runs (a test's cleanup). */
export function killWorkers(resultsDir: string): void {
  for (const log of workerLogs(resultsDir)) {
    const pid = log.hello?.pid;
    if (pid !== undefined && pidAlive(pid) && !log.lines.some((l) => l.type === "exit")) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
  }
}

export interface CliRun {
  child: ChildProcess;
  /** What it printed on stdout so far. */
  stdout(): string;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** The V8 flag tools/run-ts.sh gives node (docs/performance.md item 24), as process.execArgv shows it. */
export const COMPILED_NODE_FLAGS = ["--heap-growing-percent=20"];

/**
 * `src/cli.ts ARGS` in a child process, output collected: under tsx, or with `distDir`, compiled
 * there by tools/run-ts.sh as `make run` runs it.
 */
export function spawnCli(args: string[], env: Record<string, string> = {}, distDir?: string): CliRun {
  const { command, args: runner } = distDir === undefined ? { command: process.execPath, args: ["--import", "tsx", path.join(ROOT, "src/cli.ts")] } : compiledCommand("src/cli.ts");
  const child = spawn(command, [...runner, ...args], { cwd: ROOT, env: { ...process.env, ...env, ...(distDir === undefined ? {} : { BIAS_INIT_DIST_DIR: distDir }) }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Awaited<CliRun["done"]>>((resolve) => child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done, stdout: () => stdout };
}

/** Polls `probe` every 20 ms until it returns a value (or `timeoutMs` passes: throws). */
export async function waitUntil<T>(probe: () => T | null | undefined, timeoutMs: number, what: string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== null && value !== undefined) return value;
    if (Date.now() > end) throw new Error(`waited ${timeoutMs / 1000} s for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
