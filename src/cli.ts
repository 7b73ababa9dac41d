// Headless runner for long jobs: the same plans, grid, store and progress reporter as the notebooks.
//   npx tsx src/cli.ts --preset quick --trials 2        (or: make run PRESET=quick ARGS="--trials 2")
//   npx tsx src/cli.ts --plan convergence               (what notebooks/03_convergence runs)
// Ctrl-C stops after the step in flight; running the same command again resumes.
// Every flag is one row of FLAGS below: its help text, its parsing and the override it sets.
import { parseFlags, FlagSpec, UsageError } from "./util/args";
import { runMain } from "./errors";
import { initBackend, backendLine, unusedGpuLines } from "./engine/backend";
import {
  ConfigError, ConfigOverrides, ENVIRONMENT, PresetName, defaultDataDir, defaultPreset, defaultResultsDir, describeSetting, makeConfig, mergeOverrides, readEnvironment,
} from "./config";
import { PLANS, PlanName, planOverrides, planRates } from "./experiment/plans";
import { parseRates, rateConfigs, runSweep, sweepDataLine } from "./experiment/sweep";
import { terminalView, formatDuration } from "./experiment/progress";
import { runSummaryText } from "./experiment/run_summary";
import { cudaEnvToLoad, rerunWithCudaEnv } from "./engine/cuda_env";
import { dryRun } from "./experiment/dry_run";

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
  { name: "help", value: null, help: "this text" },
];

export function helpText(): string {
  const rows = FLAGS.map((f) => [`  --${f.name}${f.value ? ` ${f.value}` : ""}`, f.help]);
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  const env = Object.entries(ENVIRONMENT).map(([name, what]) => `  ${name.padEnd(width - 2)}${what}`);
  return ["usage: npx tsx src/cli.ts [options]   (or: make run PRESET=quick ARGS=\"--trials 2\")",
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
  };
}

async function main(): Promise<number> {
  const cudaEnv = cudaEnvToLoad();
  if (cudaEnv !== null) return rerunWithCudaEnv(cudaEnv);
  const request = parseCli(process.argv.slice(2));
  if (request.help) {
    console.log(helpText());
    return 0;
  }
  const backend = await initBackend();
  console.log(backendLine(backend));
  const preset = (request.preset ?? defaultPreset(backend.kind === "cuda")) as PresetName;
  const planned = request.plan === null ? {} : planOverrides(request.plan, preset);
  const config = makeConfig(preset, mergeOverrides(planned, request.overrides));
  const unusedGpu = unusedGpuLines(backend);
  for (const line of unusedGpu) console.log(line);
  if (config.preset === "full" && unusedGpu.length > 0 && !request.allowCpu && !request.dryRun) {
    throw new ConfigError(`--preset full: an NVIDIA GPU is visible but this run's engine is ${backend.kind} (why: see above); ` +
      "build the CUDA engine (make native-gpu), or pass --allow-cpu to run the full grid on the CPU");
  }
  const rates = request.rates ?? planRates(request.plan, preset);
  const configs = rates === null ? [config] : rateConfigs(config, rates);
  if (request.dryRun) {
    console.log(`preset ${config.preset}${request.plan ? ` (plan ${request.plan})` : ""} | ${describeSetting(configs[0])}`);
    if (configs.length > 1) console.log(`rates ${rates?.join(", ")}: one store each; this dry run measures the first (positives subsampled away make the others' epochs at most as long)`);
    await dryRun(configs[0], request.resultsDir);
    return 0;
  }
  const view = terminalView();
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
    },
  });
  if (sweep.stopped) return 130;
  for (const run of sweep.runs) console.log(runSummaryText(run.result));
  console.log(`done in ${formatDuration(sweep.runs.reduce((s, r) => s + r.seconds, 0))}`);
  return sweep.runs.some((r) => r.result.failed.length > 0) ? 1 : 0;
}

if (require.main === module) runMain(main);
