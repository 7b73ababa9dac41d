// One worker of several on one results store (`src/cli.ts --worker`): a child of `--workers N`, a
// notebook's detached worker, a Slurm array task or a Kubernetes pod all run this. It takes the
// units of its configs that are neither finished nor locked, one after another, under the unit
// locks (grid.ts), and at the end waits for the units other workers hold, taking over any whose
// lock goes stale (its worker died), so that the selection is done when the last worker ends.
// SIGINT and SIGTERM (what Slurm and Kubernetes send) stop it after the step in flight. Its
// progress goes to its output as a run's does, and as events to its log in `<results>/workers/`.
import { ExperimentConfig, readEnvironment } from "../config";
import { UserError } from "../errors";
import { ExperimentResult, storeFor } from "./grid";
import { ProgressView, runWithProgress } from "./progress";
import { workerLogFile, WorkerLogWriter } from "./worker_log";

export interface WorkerOptions {
  resultsDir: string;
  allowEngineChange?: boolean;
  view: ProgressView;
}

export interface WorkerRun {
  /**
   * 0: its part is done (a diverged unit is a result, recorded as failed, not a failure of the
   * worker: a scheduler must not retry it), 130: stopped by a signal.
   */
  code: number;
  results: ExperimentResult[];
}

/**
 * Runs the units of `configs` this worker can take. With several configs (a sweep), a first pass
 * takes every free unit of each without waiting, and a second waits for the units others hold.
 */
export async function runWorker(configs: ExperimentConfig[], opts: WorkerOptions): Promise<WorkerRun> {
  const stores = configs.map((c) => storeFor(c, opts.resultsDir));
  const env = readEnvironment();
  const log = new WorkerLogWriter(workerLogFile(opts.resultsDir), {
    gpu: env.CUDA_VISIBLE_DEVICES, threads: env.TF_NUM_INTRAOP_THREADS, node: [...process.execArgv, process.argv[1]], configs: stores.map((s) => s.resolved), stores: stores.map((s) => s.store.hash),
  });
  let closed = false;
  const close = (code: number, error: string | null): void => {
    if (!closed) log.close(code, error);
    closed = true;
  };
  // A second interrupt exits at once (process.exit): the log still gets its exit line.
  const onExit = (code: number): void => close(code, null);
  process.on("exit", onExit);
  try {
    const results: ExperimentResult[] = stores.map(() => null as unknown as ExperimentResult);
    const passes = configs.length > 1 ? [false, true] : [true];
    let stopped = false;
    for (const waitForOthers of passes) {
      for (const [i, { store, resolved }] of stores.entries()) {
        const run = await runWithProgress(resolved, {
          resultsDir: opts.resultsDir, allowEngineChange: opts.allowEngineChange, view: opts.view, exitOnSecondInterrupt: true,
          stopSignals: ["SIGINT", "SIGTERM"], waitForOthers, onEvent: (e) => log.event(store.hash, e),
        });
        results[i] = run.result;
        stopped = run.stopped;
        if (stopped) break;
      }
      if (stopped) break;
    }
    const code = stopped ? 130 : 0;
    close(code, null);
    return { code, results };
  } catch (e) {
    close(e instanceof UserError ? 2 : 1, (e as Error).message.split("\n")[0]);
    throw e;
  } finally {
    process.off("exit", onExit);
  }
}
