// Several workers on one results store, started and watched from one process: the CLI's
// `--workers N` and a notebook's `run(plan, { workers: N })`. Each worker is `src/cli.ts --worker`
// (worker.ts) in a process of its own, pinned to one GPU where there are GPUs; the units are shared
// out by the unit locks, so nothing here assigns work. This process shows the combined progress
// read from the workers' event logs and the store (worker_progress.ts).
//
// Attached workers (the CLI) are stopped with this process: Ctrl-C is passed on to them (they stop
// after their step in flight; a second Ctrl-C stops them at once). Detached workers (a notebook's
// `detach: true`) run in a session of their own and survive a closed tab or a restarted kernel; an
// interrupt only stops the watching, and the next call attaches to them instead of starting more.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ExperimentConfig, lockSettings, readEnvironment, WORKERS } from "../config";
import { BackendKind, visibleNvidiaGpus } from "../engine/backend";
import { UsageError } from "../util/args";
import { writeConfigFile } from "./config_file";
import { ExperimentResult, gridUnits, loadResults, storeFor, unitNeedsTraining } from "./grid";
import type { ProgressView } from "./progress";
import { listWorkerLogs, WorkerLogReader, workerLogFile, workersDir } from "./worker_log";
import { WatchedWorker, WorkerExit, WorkerWatch } from "./worker_progress";
import { compiledCommand } from "../util/runner";

/**
 * The GPUs to pin workers to: `--gpus 0,1,2,3` as given (indexes or UUIDs, what CUDA_VISIBLE_DEVICES
 * takes), else the indexes `nvidia-smi -L` lists; empty on a machine without NVIDIA GPUs.
 */
export function gpuList(flag: string | null, listed: () => string[] = visibleNvidiaGpus): string[] {
  if (flag !== null) {
    const gpus = flag.split(",").map((g) => g.trim()).filter(Boolean);
    const bad = gpus.find((g) => !/^[A-Za-z0-9-]+$/.test(g));
    if (gpus.length === 0 || bad !== undefined) throw new UsageError(`--gpus: "${flag}" is not a list of GPU indexes or UUIDs; give e.g. --gpus 0,1,2,3`);
    return gpus;
  }
  return listed().flatMap((line) => /^GPU (\d+):/.exec(line)?.[1] ?? []);
}

/**
 * TensorFlow's threads per op for each of `count` workers sharing the CPU (no GPU pinning): the
 * cores split evenly, at least one each, so that N workers do not run N x cores threads. Two
 * one-thread workers trained 32x32 1.4-1.5x more images per second together than two with the
 * default (docs/performance.md). A TF_NUM_INTRAOP_THREADS the user set is kept. Empty: leave it.
 */
export function cpuWorkerEnv(count: number, cores: number, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (readEnvironment(env).TF_NUM_INTRAOP_THREADS !== null) return {};
  return { TF_NUM_INTRAOP_THREADS: String(Math.max(1, Math.floor(cores / count))) };
}

/**
 * The line a one-process CPU run with several units of a real model prints: how `--workers` would
 * use the cores (null: nothing to say; the tiny model's units are over before a worker has loaded).
 */
export function cpuWorkersHint(engine: BackendKind, model: string, pendingUnits: number, cores: number): string | null {
  if (engine === "cuda" || model === "tiny" || pendingUnits < 2 || cores < 2) return null;
  const n = Math.min(cores, pendingUnits);
  return `note: ${pendingUnits} units on ${cores} CPU cores: \`--workers ${n}\` (make run WORKERS=${n}) trains ${n} at a time, the cores split between them, memory permitting ` +
    "(4 quick units: 1.7x faster with 2 workers on 2 cores, README \"On CPU\")";
}

export interface LaunchOptions {
  count: number;
  /** One GPU per worker, round robin (empty: no pinning). */
  gpus: string[];
  /** Arguments after `src/cli.ts --worker` (the config's flags, or --config FILE and --results). */
  args: string[];
  resultsDir: string;
  /** In a session of their own, surviving this process (a notebook's workers). */
  detach: boolean;
}

export interface LaunchedWorker {
  pid: number;
  gpu: string | null;
  /** TF_NUM_INTRAOP_THREADS this process gave it (null: none, it keeps the environment's). */
  threads: string | null;
  /** Where its stdout and stderr go: `<results>/workers/<host>-<pid>.log`. */
  outFile: string;
  child: ChildProcess;
  exited: Promise<WorkerExit>;
}

/** Starts `count` workers (`src/cli.ts --worker ...`, compiled as `make run` runs it: util/runner.ts) in this process's working directory. */
export function launchWorkers(o: LaunchOptions): LaunchedWorker[] {
  const dir = workersDir(o.resultsDir);
  fs.mkdirSync(dir, { recursive: true });
  const cli = compiledCommand("src/cli.ts");
  const launched: LaunchedWorker[] = [];
  const cpuEnv = cpuWorkerEnv(o.count, os.availableParallelism());
  for (let i = 0; i < o.count; i++) {
    const gpu = o.gpus.length > 0 ? o.gpus[i % o.gpus.length] : null;
    const starting = path.join(dir, `.starting-${process.pid}-${i}.log`);
    const fd = fs.openSync(starting, "a");
    // A session of its own either way: a terminal's Ctrl-C reaches this process only, which passes it on once.
    const child = spawn(cli.command, [...cli.args, "--worker", ...o.args], {
      cwd: process.cwd(), detached: true, stdio: ["ignore", fd, fd],
      env: { ...process.env, ...(gpu === null ? cpuEnv : { CUDA_VISIBLE_DEVICES: gpu }) },
    });
    fs.closeSync(fd);
    if (child.pid === undefined) throw new Error(`could not start worker ${i + 1} (${cli.command} ${cli.args.join(" ")})`);
    const outFile = path.join(dir, `${os.hostname()}-${child.pid}.log`);
    fs.renameSync(starting, outFile);
    const exited = new Promise<WorkerExit>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
    if (o.detach) child.unref();
    launched.push({ pid: child.pid, gpu, threads: gpu === null ? cpuEnv.TF_NUM_INTRAOP_THREADS ?? null : null, outFile, child, exited });
  }
  return launched;
}

/** Workers still running on this results store that serve one of `stores` (config hashes; "any": all), by their logs. */
export function liveWorkers(resultsDir: string, stores: string[] | "any"): WorkerLogReader[] {
  const staleMs = lockSettings().staleMs;
  return listWorkerLogs(resultsDir).map((f) => new WorkerLogReader(f)).filter((r) => {
    r.read();
    return r.hello !== null && (stores === "any" || r.hello.stores.some((s) => stores.includes(s))) && r.alive(staleMs);
  });
}

export interface WorkersRunOptions extends LaunchOptions {
  view: ProgressView;
  /** Attach to live workers of these stores (config hashes; "any": all) instead of starting new ones. */
  attachTo?: string[] | "any";
  /** The live workers of `attachTo`, when the caller has just looked (so both act on the same answer). */
  live?: WorkerLogReader[];
  /** False: only attach (`--attach`); with no worker running, say so and return. */
  launch?: boolean;
}

export interface WorkersRun {
  /** Every watched worker ended (false: the watching was interrupted while detached workers run on). */
  ended: boolean;
  /** An interrupt stopped the workers (attached) or the watching (detached). */
  interrupted: boolean;
  /** True when the call attached to running workers instead of starting new ones. */
  attached: boolean;
  watch: WorkerWatch;
}

/** Starts the workers (or attaches to running ones) and shows their combined progress until they end. */
export async function runOnWorkers(o: WorkersRunOptions): Promise<WorkersRun> {
  const { view } = o;
  const live = o.live ?? (o.attachTo ? liveWorkers(o.resultsDir, o.attachTo) : []);
  if (live.length === 0 && o.launch === false) {
    view.finish(`no worker is running on ${o.resultsDir} (their logs: ${workersDir(o.resultsDir)})`);
    return { ended: true, interrupted: false, attached: false, watch: new WorkerWatch(o.resultsDir, [], lockSettings().staleMs) };
  }
  const launched = live.length > 0 ? [] : launchWorkers(o);
  const watched: WatchedWorker[] = live.length > 0
    ? live.map((reader, i) => ({ label: `w${i + 1}`, pid: reader.hello?.pid ?? 0, reader: new WorkerLogReader(reader.file), exit: null, child: false, outFile: null, current: null, waiting: false }))
    : launched.map((l, i) => ({ label: `w${i + 1}`, pid: l.pid, reader: new WorkerLogReader(workerLogFile(o.resultsDir, l.pid)),
      exit: null, child: true, outFile: l.outFile, current: null, waiting: false }));
  launched.forEach((l, i) => void l.exited.then((exit) => (watched[i].exit = exit)));
  const where = workersDir(o.resultsDir);
  if (live.length > 0) view.addRow(`attached to ${live.length} running worker(s) (pid ${live.map((r) => r.hello?.pid).join(", ")}); their logs are in ${where}`);
  else {
    const threads = launched[0]?.threads ?? null;
    const pinning = o.gpus.length > 0 ? `one GPU each (CUDA_VISIBLE_DEVICES ${launched.map((l) => l.gpu).join(", ")})`
      : `sharing the CPU's ${os.availableParallelism()} cores${threads === null ? "" : ` (TF_NUM_INTRAOP_THREADS=${threads} each)`}`;
    view.addRow(`started ${launched.length} worker(s)${o.detach ? " (detached: they keep running if this stops)" : ""}, ${pinning}; logs in ${where}`);
  }
  const watch = new WorkerWatch(o.resultsDir, watched, lockSettings().staleMs);
  const started = Date.now();
  let interrupts = 0;
  const onInterrupt = (): void => {
    interrupts++;
    if (o.detach || live.length > 0) return;
    for (const w of watched) if (w.exit === null) signal(w.pid, "SIGINT");
    view.addRow(interrupts === 1 ? "interrupt: every worker stops after its step in flight (Ctrl-C again to stop them now); run the same again to resume"
      : "interrupt again: workers stop now; their epochs in flight are redone on resume");
  };
  // Attached workers stop with this process: a closed terminal (SIGHUP) or a kill (SIGTERM) is an
  // interrupt too, and an exit on an error asks them to stop after their step.
  const signals: NodeJS.Signals[] = o.detach || live.length > 0 ? ["SIGINT"] : ["SIGINT", "SIGTERM", "SIGHUP"];
  const onExit = (): void => {
    if (!o.detach) for (const w of watched) if (w.child && w.exit === null) signal(w.pid, "SIGTERM");
  };
  for (const s of signals) process.on(s, onInterrupt);
  process.on("exit", onExit);
  try {
    for (;;) {
      for (const row of watch.poll()) view.addRow(row);
      if (watch.allEnded()) break;
      if (interrupts > 0 && (o.detach || live.length > 0)) {
        const running = watched.filter((w) => watch.running(w)).length;
        view.finish(`stopped watching: ${running} worker(s) keep running; run the same again to attach to them`);
        return { ended: false, interrupted: true, attached: live.length > 0, watch };
      }
      view.setLine(watch.statusLine());
      await new Promise((resolve) => setTimeout(resolve, WORKERS.pollMs));
    }
    for (const row of watch.poll()) view.addRow(row);
    view.finish(watch.summaryLine((Date.now() - started) / 1000));
    return { ended: true, interrupted: interrupts > 0, attached: live.length > 0, watch };
  } catch (e) {
    onExit();
    throw e;
  } finally {
    for (const s of signals) process.off(s, onInterrupt);
    process.off("exit", onExit);
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

export interface ConfigOnWorkers {
  workers: number;
  /** Survive this process (a notebook's closed tab or restarted kernel); default false. */
  detach?: boolean;
  /** GPUs to pin to, as --gpus takes them (default: those `nvidia-smi -L` lists). */
  gpus?: string;
}

/**
 * A notebook's `run(plan, { workers: N, detach })` (and its sweep's, one config per rate): shows at
 * once what the stores hold when nothing is left to train; attaches to running workers of these
 * configs' stores when there are some; else starts N workers on them (`--worker --config FILE`).
 * Returns what each store holds when the watching ends, in the order of `configs`.
 */
export async function runConfigsOnWorkers(configs: readonly ExperimentConfig[], o: ConfigOnWorkers & { resultsDir: string; view: ProgressView }): Promise<{ results: ExperimentResult[]; trained: boolean; stopped: boolean }> {
  const stores = configs.map((c) => storeFor(c, o.resultsDir).store);
  const hashes = stores.map((s) => s.hash);
  const live = liveWorkers(o.resultsDir, hashes);
  const results = (): ExperimentResult[] => configs.map((c) => loadResults(c, o.resultsDir));
  if (live.length === 0 && !configs.some((c, i) => gridUnits(c).some((u) => unitNeedsTraining(stores[i], c, u)))) return { results: results(), trained: false, stopped: false };
  const file = path.join(workersDir(o.resultsDir), `config-${hashes[0]}-${Date.now()}.json`);
  if (live.length === 0) writeConfigFile(file, [...configs]);
  const run = await runOnWorkers({ count: o.workers, gpus: gpuList(o.gpus ?? null), args: ["--config", file, "--results", o.resultsDir], resultsDir: o.resultsDir,
    detach: o.detach === true, view: o.view, attachTo: hashes, live });
  return { results: results(), trained: true, stopped: run.interrupted };
}

/** runConfigsOnWorkers for one config. */
export async function runConfigOnWorkers(config: ExperimentConfig, o: ConfigOnWorkers & { resultsDir: string; view: ProgressView }): Promise<{ result: ExperimentResult; trained: boolean; stopped: boolean }> {
  const { results, trained, stopped } = await runConfigsOnWorkers([config], o);
  return { result: results[0], trained, stopped };
}
