// Headless runner for long jobs: the same plans, grid, store and progress reporter as the notebooks.
//   npx tsx src/cli.ts --preset quick --trials 2        (or: make run PRESET=quick ARGS="--trials 2")
//   npx tsx src/cli.ts --plan convergence               (what notebooks/03_convergence runs)
//   npx tsx src/cli.ts --preset full --workers 4        (four workers on one store, one GPU each)
//   npx tsx src/cli.ts results merge SRC... DEST        (finished units of several stores into one)
// Ctrl-C stops after the step in flight; running the same command again resumes.
// Every flag is one row of FLAGS below: its help text, its parsing and the override it sets.
import * as os from "os";
import { parseFlags, FlagSpec, UsageError } from "./util/args";
import { runMain } from "./errors";
import { initBackend, backendLine, unusedGpuLines, visibleNvidiaGpus } from "./engine/backend";
import {
  ConfigError, ConfigOverrides, ENVIRONMENT, PresetName, defaultDataDir, defaultPreset, defaultResultsDir, describeSetting, makeConfig, mergeOverrides, readEnvironment,
} from "./config";
import { PLANS, PlanName, planOverrides, planRates } from "./experiment/plans";
import { checkSweepData, parseRates, rateConfigs, runSweep, sweepDataLine } from "./experiment/sweep";
import { terminalView } from "./experiment/progress";
import { formatDuration } from "./util/duration";
import { runSummaryText } from "./experiment/run_summary";
import { cudaEnvToLoad, rerunWithCudaEnv } from "./engine/cuda_env";
import { dryRun } from "./experiment/dry_run";
import { ExperimentConfig } from "./config";
import { loadResults } from "./experiment/grid";
import { runWorker } from "./experiment/worker";
import { cpuWorkersHint, gpuList, runOnWorkers } from "./experiment/workers";
import { mergeStores } from "./experiment/merge";
import { readConfigFile } from "./experiment/config_file";

interface Flag {
  name: string;
  /** Placeholder of the value in the help text; null for a boolean switch. */
  value: string | null;
  help: string;
  /** The config override this flag sets (absent: the flag is handled by main). */
  set?(o: ConfigOverrides, v: string, flag: string): void;
}

const list = (v: string): string[] => v.split(",").map((s) => s.trim()).filter(Boolean);

function num(v: string, flag: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) throw new ConfigError(`--${flag}: "${v}" is not a number; give a number`);
  return n;
}

const limit = (v: string, flag: string): number | null => (v === "all" ? null : num(v, flag));

/** Values are checked by makeConfig's validation, which names the field. */
const FLAGS: readonly Flag[] = [
  { name: "preset", value: "full|quick|smoke", help: "settings bundle (default: full on a CUDA engine, quick elsewhere; env BIAS_INIT_PRESET)" },
  { name: "plan", value: PLANS.join("|"), help: "what a notebook runs (imagenet/scratch: one half of the grid; convergence: the long scratch run; demo: the walkthrough's)" },
  { name: "backbones", value: "LIST", help: "imagenet,scratch (default both)", set: (o, v) => (o.backbones = list(v) as ConfigOverrides["backbones"]) },
  { name: "arms", value: "LIST", help: "vanilla,positive_rate (default both); positive_rate_zero_head adds the third arm (that bias, head weights zeroed)", set: (o, v) => (o.arms = list(v) as ConfigOverrides["arms"]) },
  { name: "rates", value: "LIST", help: "imbalance sweep: target positive rates, e.g. 0.1,0.02,0.01 (positives of train and test subsampled, one store per rate; --plan sweep sets the preset's)" },
  { name: "trials", value: "N", help: "paired trials per arm", set: (o, v, f) => (o.trials = num(v, f)) },
  { name: "epochs", value: "N", help: "epochs per unit (epoch 0 is the evaluation before training)", set: (o, v, f) => (o.epochs = num(v, f)) },
  { name: "model", value: "b1|b0|tiny", help: "backbone architecture", set: (o, v) => (o.model = v as ConfigOverrides["model"]) },
  { name: "data", value: "auto|cifar10|synthetic", help: "data source (auto: CIFAR-10 if downloaded, else the synthetic stand-in)", set: (o, v) => (o.data = { ...o.data, source: v as "auto" }) },
  { name: "data-dir", value: "DIR", help: "where data lives (default: env BIAS_INIT_DATA, else data)", set: (o, v) => (o.data = { ...o.data, dir: v }) },
  { name: "positive", value: "NAME|INDEX", help: "positive class (default frog; the reference used 9, truck)", set: (o, v) => (o.data = { ...o.data, positiveClass: /^\d+$/.test(v) ? Number(v) : v }) },
  { name: "train-limit", value: "N|all", help: "use the first N training images", set: (o, v, f) => (o.data = { ...o.data, trainLimit: limit(v, f) }) },
  { name: "test-limit", value: "N|all", help: "use the first N test images", set: (o, v, f) => (o.data = { ...o.data, testLimit: limit(v, f) }) },
  { name: "lr", value: "X", help: "SGD learning rate", set: (o, v, f) => (o.lr = num(v, f)) },
  { name: "momentum", value: "X", help: "SGD momentum (PyTorch semantics)", set: (o, v, f) => (o.momentum = num(v, f)) },
  { name: "train-batch", value: "N", help: "training batch size", set: (o, v, f) => (o.trainBatch = num(v, f)) },
  { name: "test-batch", value: "N", help: "evaluation batch size", set: (o, v, f) => (o.testBatch = num(v, f)) },
  { name: "seed", value: "N", help: "base seed (trial k derives its seeds from it; both arms share them)", set: (o, v, f) => (o.seed = num(v, f)) },
  { name: "eval-mode", value: "eval|train|both", help: "train = the reference's quirk (batch-statistics BatchNorm and dropout at test time); both = eval, plus train-mode BCE and ROC-AUC", set: (o, v) => (o.evalMode = v as "eval") },
  { name: "results", value: "DIR", help: "results store root (default: env BIAS_INIT_RESULTS, else results)" },
  { name: "dry-run", value: null, help: "units, steps and images per unit, a short measured run, and the projected wall time; trains and writes nothing" },
  { name: "allow-engine-change", value: null, help: "continue units started on another engine (default: stop and say so)" },
  { name: "allow-cpu", value: null, help: "run the full preset on the CPU although an NVIDIA GPU is visible" },
  { name: "workers", value: "N", help: "start N worker processes on one store (one GPU each where there are GPUs) and show their combined progress" },
  { name: "gpus", value: "LIST", help: "GPUs to pin the workers to, e.g. 0,1,2,3 (default: those `nvidia-smi -L` lists; --workers defaults to their number)" },
  { name: "worker", value: null, help: "run as one worker of several on a shared store (what --workers, a Slurm array task and a Kubernetes pod start): takes units neither done nor locked; SIGTERM stops it after the step in flight" },
  { name: "attach", value: null, help: "watch the workers running on the results store (a Slurm array, pods, a notebook's detached workers) until they end; starts nothing" },
  { name: "config", value: "FILE", help: "run the config(s) in this JSON file (one ExperimentConfig or a list; what a notebook's workers get) instead of --preset and --plan" },
  { name: "help", value: null, help: "this text" },
];

export function helpText(): string {
  const rows = FLAGS.map((f) => [`  --${f.name}${f.value ? ` ${f.value}` : ""}`, f.help]);
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  const env = Object.entries(ENVIRONMENT).map(([name, what]) => `  ${name.padEnd(width - 2)}${what}`);
  return ["usage: npx tsx src/cli.ts [options]   (or: make run PRESET=quick ARGS=\"--trials 2\")",
    "       npx tsx src/cli.ts results merge SRC... DEST   copy the finished units of stores SRC into DEST (each a results/<hash> folder, or a",
    "                                                      results root whose stores merge by name); the config key and numerics version must",
    "                                                      match and a unit held with other numbers is refused; nothing changes on refusal",
    ...rows.map(([left, help]) => left.padEnd(width) + help), "environment:", ...env].join("\n");
}

export interface CliRequest {
  help: boolean;
  dryRun: boolean;
  preset: string | null;
  plan: PlanName | null;
  /** --rates: one config (and store) per target positive rate; null: the plan's, else the data's own. */
  rates: number[] | null;
  overrides: ConfigOverrides;
  resultsDir: string;
  allowEngineChange: boolean;
  allowCpu: boolean;
  /** Workers to start (--workers, or one per --gpus entry); null: train in this process. */
  workers: number | null;
  gpus: string | null;
  worker: boolean;
  attach: boolean;
  configFile: string | null;
}

/** The command line as a request; bad flags are UsageError/ConfigError (one line, exit 2). */
export function parseCli(argv: string[], env: NodeJS.ProcessEnv = process.env): CliRequest {
  const spec: FlagSpec = {};
  for (const f of FLAGS) spec[f.name] = { type: f.value === null ? "boolean" : "string" };
  const values = parseFlags(argv, spec, helpText());
  const overrides: ConfigOverrides = {};
  for (const f of FLAGS) {
    const v = values[f.name];
    if (typeof v === "string" && f.set) f.set(overrides, v, f.name);
  }
  if (overrides.data?.dir === undefined && readEnvironment(env).BIAS_INIT_DATA !== null) overrides.data = { ...overrides.data, dir: defaultDataDir(env) };
  const plan = typeof values.plan === "string" ? values.plan : null;
  if (plan !== null && !(PLANS as readonly string[]).includes(plan)) throw new UsageError(`--plan: unknown plan "${plan}"; use one of ${PLANS.join(", ")}`);
  return {
    help: values.help === true,
    dryRun: values["dry-run"] === true,
    preset: typeof values.preset === "string" ? values.preset : null,
    plan: plan as PlanName | null,
    rates: typeof values.rates === "string" ? parseRates(values.rates) : null,
    overrides,
    resultsDir: typeof values.results === "string" ? values.results : defaultResultsDir(env),
    allowEngineChange: values["allow-engine-change"] === true,
    allowCpu: values["allow-cpu"] === true,
    ...workerFlags(values),
  };
}

function workerFlags(values: Record<string, string | boolean | undefined>): Pick<CliRequest, "workers" | "gpus" | "worker" | "attach" | "configFile"> {
  const gpus = typeof values.gpus === "string" ? values.gpus : null;
  const count = typeof values.workers === "string" ? Number(values.workers) : gpus !== null ? gpuList(gpus).length : null;
  if (count !== null && (!Number.isInteger(count) || count < 1)) throw new UsageError(`--workers: "${values.workers}" is not a whole number >= 1; give the number of worker processes`);
  const worker = values.worker === true;
  if (worker && count !== null) throw new UsageError("--worker: not with --workers or --gpus (those start workers; --worker is what each of them runs)");
  if (count !== null && values["dry-run"] === true) throw new UsageError("--workers: not with --dry-run; a dry run measures one process");
  const configFile = typeof values.config === "string" ? values.config : null;
  if (configFile !== null && ["preset", "plan", "rates"].some((k) => typeof values[k] === "string")) throw new UsageError("--config: not with --preset, --plan or --rates; the file holds the whole config (one config per rate)");
  const attach = values.attach === true;
  if (attach && (worker || count !== null)) throw new UsageError("--attach: not with --worker, --workers or --gpus; it only watches workers that run");
  return { workers: count, gpus, worker, attach, configFile };
}

/** The configs a request runs: its --config file, or its preset (by default the engine's) with its plan and overrides. */
function requestConfigs(request: CliRequest, onCuda: boolean): ExperimentConfig[] {
  if (request.configFile !== null) return readConfigFile(request.configFile, request.overrides);
  const preset = (request.preset ?? defaultPreset(onCuda)) as PresetName;
  const planned = request.plan === null ? {} : planOverrides(request.plan, preset);
  const config = makeConfig(preset, mergeOverrides(planned, request.overrides));
  const rates = request.rates ?? planRates(request.plan, preset);
  return rates === null ? [config] : rateConfigs(config, rates);
}

/** The command line without --workers and --gpus: what each worker gets after --worker. */
function workerArgs(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--workers" || argv[i] === "--gpus") i++;
    else if (!argv[i].startsWith("--workers=") && !argv[i].startsWith("--gpus=")) out.push(argv[i]);
  }
  return out;
}

/** The preset a `--workers` run checks and hands to its workers: --preset, else full where a GPU is listed, else quick; null with --config. */
export function workersPreset(request: Pick<CliRequest, "configFile" | "preset">, gpuListed: boolean): PresetName | null {
  if (request.configFile !== null) return null;
  return (request.preset ?? defaultPreset(gpuListed)) as PresetName;
}

/** `--workers N`: starts the workers, shows their combined progress, then the closing summary of each config. */
async function runWorkersCommand(request: CliRequest, argv: string[]): Promise<number> {
  // Checked here, once, before any worker starts; a sweep's every rate too (too few test positives
  // stops it before any worker starts). Without --preset the workers are told the preset checked
  // here: full when nvidia-smi lists a GPU (a worker whose CUDA engine then fails to load refuses
  // full loudly), else quick; a worker left to choose by its own engine could run another one.
  let presetArgs: string[] = [];
  if (!request.attach) {
    const preset = workersPreset(request, visibleNvidiaGpus().length > 0);
    if (preset !== null && request.preset === null) presetArgs = ["--preset", preset];
    const configs = requestConfigs({ ...request, preset }, false);
    checkSweepData(configs, request.resultsDir).forEach((c) => console.log(sweepDataLine(c.rate, c.counts)));
  }
  const watching = { count: 0, gpus: [], args: [], detach: true, attachTo: "any" as const, launch: false };
  const starting = { count: request.workers as number, gpus: gpuList(request.gpus), args: [...workerArgs(argv), ...presetArgs], detach: false };
  const run = await runOnWorkers({ ...(request.attach ? watching : starting), resultsDir: request.resultsDir, view: terminalView() });
  const results = run.watch.configList().map((c) => loadResults(c, request.resultsDir));
  for (const result of results) console.log(runSummaryText(result));
  if (run.interrupted) return 130;
  const codes = run.watch.workers.map((w) => w.reader.exit?.code ?? w.exit?.code ?? 1);
  if (codes.length === 0) return 0; // --attach found no worker
  if (results.length === 0 || codes.includes(2)) return Math.max(...codes);
  const left = results.reduce((n, r) => n + r.units.filter((u) => u.epochs < r.config.epochs + 1 && !["failed", "unavailable"].includes(u.status?.state ?? "")).length, 0);
  if (left > 0) console.log(`${left} unit(s) not finished (a worker ended early); run the same again to finish them`);
  return left > 0 || results.some((r) => r.failed.length > 0) ? 1 : 0;
}

/** `results merge SRC... DEST`. */
function resultsCommand(args: string[]): number {
  const usage = "usage: npx tsx src/cli.ts results merge SRC... DEST";
  if (args[0] !== "merge") throw new UsageError(`results: ${args[0] === undefined ? "no command" : `unknown command "${args[0]}"`}; ${usage}`);
  const paths = args.slice(1);
  if (paths.some((p) => p.startsWith("-"))) throw new UsageError(`results merge: takes no options; ${usage}`);
  if (paths.length < 2) throw new UsageError(`results merge: needs at least one SRC and a DEST; ${usage}`);
  console.log(mergeStores(paths.slice(0, -1), paths[paths.length - 1]));
  return 0;
}

async function main(): Promise<number> {
  const cudaEnv = cudaEnvToLoad();
  if (cudaEnv !== null) return rerunWithCudaEnv(cudaEnv);
  const argv = process.argv.slice(2);
  if (argv[0] === "results") return resultsCommand(argv.slice(1));
  const request = parseCli(argv);
  if (request.help) {
    console.log(helpText());
    return 0;
  }
  // The parent of workers loads no engine (it would hold a GPU); each worker loads its own.
  if (request.workers !== null || request.attach) return runWorkersCommand(request, argv);
  const backend = await initBackend();
  console.log(backendLine(backend));
  const configs = requestConfigs(request, backend.kind === "cuda");
  const config = configs[0];
  const unusedGpu = unusedGpuLines(backend);
  for (const line of unusedGpu) console.log(line);
  if (configs.some((c) => c.preset === "full") && unusedGpu.length > 0 && !request.allowCpu && !request.dryRun) {
    throw new ConfigError(`--preset full: an NVIDIA GPU is visible but this run's engine is ${backend.kind} (why: see above); ` +
      "build the CUDA engine (make native-gpu), or pass --allow-cpu to run the full grid on the CPU");
  }
  if (request.dryRun) {
    console.log(`preset ${config.preset}${request.plan ? ` (plan ${request.plan})` : ""} | ${describeSetting(configs[0])}`);
    if (configs.length > 1) console.log(`rates ${configs.map((c) => c.data.targetPositiveRate).join(", ")}: one store each; this dry run measures the first (positives subsampled away make the others' epochs at most as long)`);
    await dryRun(configs[0], request.resultsDir);
    return 0;
  }
  if (request.worker) {
    const worker = await runWorker(configs, { resultsDir: request.resultsDir, allowEngineChange: request.allowEngineChange, view: terminalView() });
    if (worker.code !== 130) for (const result of worker.results) console.log(runSummaryText(result));
    // A worker's diverged units are results: it exits 0 (schedulers must not retry).
    return worker.code;
  }
  const view = terminalView();
  let hinted = false;
  const sweep = await runSweep(configs, {
    onDataChecked: (checked) => checked.forEach((c) => console.log(sweepDataLine(c.rate, c.counts))),
    resultsDir: request.resultsDir,
    allowEngineChange: request.allowEngineChange,
    view: () => view,
    exitOnSecondInterrupt: true,
    onStart: (e, c) => {
      console.log(`preset ${c.preset}${request.plan ? ` (plan ${request.plan})` : ""} | model ${c.model} | input ${c.input.resize ?? 32}->${c.input.crop} | ` +
        `dataset ${e.dataset.toUpperCase()} | positive rate ${e.positiveRate.toFixed(4)}${c.data.targetPositiveRate === null ? "" : ` (target ${c.data.targetPositiveRate})`} | ` +
        `test ${e.counts.test.images} images, ${e.counts.test.positives} positive`);
      if (e.note) console.log(e.note);
      if (e.backend.kind === "js" && c.model !== "tiny") {
        console.log("note: the pure-JS engine trains B1 roughly 10x slower than the native one; `make native` builds that from the package registries (docs/native.md)");
      }
      console.log(`results: ${e.dir} | ${e.pending.length} unit(s) to run, ${e.totalSteps} training steps`);
      const hint = cpuWorkersHint(e.backend.kind, c.model, e.pending.length, os.availableParallelism());
      if (hint !== null && !hinted) {
        hinted = true;
        console.log(hint);
      }
    },
  });
  if (sweep.stopped) return 130;
  for (const run of sweep.runs) console.log(runSummaryText(run.result));
  console.log(`done in ${formatDuration(sweep.runs.reduce((s, r) => s + r.seconds, 0))}`);
  return sweep.runs.some((r) => r.result.failed.length > 0) ? 1 : 0;
}

if (require.main === module) runMain(main);
