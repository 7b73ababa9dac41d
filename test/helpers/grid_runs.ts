// Shared by the store tests (crash points, processes sharing a store): a small grid on a small
// synthetic CIFAR-10 folder, run in a child process (test/helpers/grid_child.ts) or in-process,
// and what the store holds afterwards.
import { spawn, ChildProcess } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { ConfigOverrides, ExperimentConfig, makeConfig } from "../../src/config";
import { loadResults } from "../../src/experiment/grid";
import { writeSyntheticCifar10 } from "../../src/data/synthetic";

const ROOT = path.resolve(__dirname, "../..");

/**
 * `train` training images (centre 16x16 crops) in batches of 32 and `test` test images (default 64
 * and 32: 2 steps per epoch of the tiny model), with the grid's overrides.
 */
export function smallGrid(dataDir: string, overrides: ConfigOverrides, sizes = { train: 64, test: 32 }): ConfigOverrides {
  if (!fs.existsSync(path.join(dataDir, "cifar-10-batches-bin"))) writeSyntheticCifar10(dataDir, { perTrainBatch: 100, testCount: 32, seed: 3 });
  return { data: { source: "cifar10", dir: dataDir, trainLimit: sizes.train, testLimit: sizes.test }, input: { resize: null, crop: 16 }, trainBatch: 32, backbones: ["scratch"], ...overrides };
}

export function configOf(overrides: ConfigOverrides): ExperimentConfig {
  return makeConfig("smoke", overrides);
}

export interface ChildRun {
  child: ChildProcess;
  /** Resolves when the child has exited: its code or signal and what it printed. */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; events: Array<Record<string, unknown>>; stderr: string }>;
  /** Resolves with the first event line matching `pred`. */
  waitFor(pred: (e: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
}

/** Starts test/helpers/grid_child.ts on `overrides` into `resultsDir`, with extra environment. */
export function spawnGrid(overrides: ConfigOverrides, resultsDir: string, env: Record<string, string> = {}): ChildRun {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "test/helpers/grid_child.ts"), JSON.stringify(overrides), resultsDir],
    { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const events: Array<Record<string, unknown>> = [];
  const waiters: Array<{ pred: (e: Record<string, unknown>) => boolean; resolve: (e: Record<string, unknown>) => void }> = [];
  let buffered = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    buffered += d.toString();
    const lines = buffered.split("\n");
    buffered = lines.pop() as string;
    for (const line of lines) {
      if (!line.startsWith("{")) continue;
      const e = JSON.parse(line) as Record<string, unknown>;
      events.push(e);
      for (const w of waiters.filter((x) => x.pred(e))) w.resolve(e);
    }
  });
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Awaited<ChildRun["done"]>>((resolve) => child.on("close", (code, signal) => resolve({ code, signal, events, stderr })));
  return {
    child, done,
    waitFor: (pred) => new Promise((resolve, reject) => {
      const seen = events.find(pred);
      if (seen) return resolve(seen);
      waiters.push({ pred, resolve });
      void done.then(() => reject(new Error(`the child exited before the awaited event; stderr:\n${stderr}`)));
    }),
  };
}

/** Every epoch record of the config's units in the store, without the timing columns (they differ between runs by nature). */
export function storeRows(config: ExperimentConfig, resultsDir: string): Array<Record<string, unknown>> {
  return loadResults(config, resultsDir).records.map((r) => {
    const { wall_s: _w, images_per_s: _i, ...rest } = r;
    return rest;
  });
}

/** Files under `dir` that a finished store must not hold: temporaries (`.tmp-<pid>`, `.tmp-<pid>.h<host>`), locks, checkpoints. */
export function leftovers(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.tmp-\d+(?:\.h[0-9a-f]{8})?$|^lock$|^checkpoint-/.test(e.name)) out.push(path.relative(dir, p));
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out.sort();
}
