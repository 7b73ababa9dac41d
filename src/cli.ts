// Headless runner for long jobs: the same grid and results store as the notebooks.
//   npx tsx src/cli.ts --preset quick --trials 2
// Ctrl-C stops after the step in flight; running the same command again resumes.
import { parseFlags, FlagSpec } from "./util/args";
import { initBackend, backendLine } from "./engine/backend";
import { makeConfig, ConfigOverrides, PresetName, ConfigError, Arm, Backbone, ModelName, EvalMode, DataSource } from "./config";
import { runExperiment, RunEvent } from "./experiment/grid";
import { formatStep, epochTableHeader, formatEpochRow, formatMemory, unitLabel, formatDuration } from "./experiment/progress";
import { TrainingStopped } from "./train/loop";
import { defaultPreset, describeResult } from "./experiment/report";

const HELP = `usage: npx tsx src/cli.ts [options]   (or: make run PRESET=quick ARGS="--trials 2")
  --preset full|quick|smoke   settings bundle (default: full on a CUDA backend, quick otherwise;
                              env BIAS_INIT_PRESET also sets it)
  --backbones LIST            imagenet,scratch (default both)
  --arms LIST                 vanilla,positive_rate (default both)
  --trials N  --epochs N      grid size
  --model b1|b0|tiny          backbone architecture
  --data auto|cifar10|synthetic   data source (auto: CIFAR-10 if downloaded, else synthetic)
  --data-dir DIR              where data lives (default data)
  --positive NAME|INDEX       positive class (default frog)
  --train-limit N|all  --test-limit N|all   use the first N images
  --lr X  --momentum X  --train-batch N  --test-batch N  --seed N
  --eval-mode eval|train      train = the reference's quirk (batch-stat BatchNorm and dropout at test time)
  --results DIR               results store root (default results)
  --help`;

function list<T extends string>(value: string | undefined): T[] | undefined {
  return value === undefined ? undefined : (value.split(",").map((s) => s.trim()).filter(Boolean) as T[]);
}

function num(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new ConfigError(`--${name}: "${value}" is not a number`);
  return n;
}

function limit(name: string, value: string | undefined): number | null | undefined {
  return value === "all" ? null : num(name, value);
}

async function main(): Promise<number> {
  const flags: FlagSpec = { help: { type: "boolean" } };
  for (const name of ["preset", "backbones", "arms", "trials", "epochs", "model", "data", "data-dir", "positive", "train-limit", "test-limit",
    "lr", "momentum", "train-batch", "test-batch", "seed", "eval-mode", "results"]) flags[name] = { type: "string" };
  const flagValues = parseFlags(process.argv.slice(2), flags, HELP);
  const values = flagValues as Record<string, string | undefined> & { help?: boolean };
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const backend = await initBackend();
  console.log(backendLine(backend));
  const positive = values.positive === undefined ? undefined : /^\d+$/.test(values.positive) ? Number(values.positive) : values.positive;
  const overrides: ConfigOverrides = {
    backbones: list<Backbone>(values.backbones), arms: list<Arm>(values.arms), trials: num("trials", values.trials),
    epochs: num("epochs", values.epochs), model: values.model as ModelName | undefined, lr: num("lr", values.lr),
    momentum: num("momentum", values.momentum), trainBatch: num("train-batch", values["train-batch"]),
    testBatch: num("test-batch", values["test-batch"]), seed: num("seed", values.seed), evalMode: values["eval-mode"] as EvalMode | undefined,
    data: { source: values.data as DataSource | undefined, dir: values["data-dir"], positiveClass: positive,
      trainLimit: limit("train-limit", values["train-limit"]), testLimit: limit("test-limit", values["test-limit"]) },
  };
  // Drop unset fields so the preset's values stand.
  const clean = JSON.parse(JSON.stringify(overrides)) as ConfigOverrides;
  const preset = (values.preset ?? defaultPreset(backend)) as PresetName;
  const config = makeConfig(preset, clean);

  let stopRequested = false;
  process.on("SIGINT", () => {
    if (stopRequested) process.exit(130);
    stopRequested = true;
    process.stderr.write("\nstopping after the step in flight (Ctrl-C again to quit now); run the same command to resume\n");
  });
  const tty = process.stderr.isTTY === true;
  const explained = new Set<string>();
  let lastPrinted = 0;
  const onEvent = (e: RunEvent): void => {
    if (e.type === "start") {
      console.log(`preset ${config.preset} | model ${config.model} | input ${config.input.resize ?? 32}->${config.input.crop} | dataset ${e.dataset.toUpperCase()} | positive rate ${e.positiveRate.toFixed(4)}`);
      if (e.note) console.log(e.note);
      if (e.backend.kind === "js" && config.model !== "tiny") {
        console.log("note: the pure-JS engine trains B1 roughly 10x slower than the native one; `make native` builds that from the package registries (docs/native.md)");
      }
      console.log(`results: ${e.dir} | ${e.pending.length} unit(s) to run, ${e.totalSteps} training steps`);
      console.log(epochTableHeader());
    } else if (e.type === "step") {
      const now = Date.now();
      if (tty) process.stderr.write(`\r\x1b[2K${formatStep(e, config.epochs)}`);
      else if (now - lastPrinted > 30000) {
        lastPrinted = now;
        process.stderr.write(formatStep(e, config.epochs) + "\n");
      }
    } else if (e.type === "epoch") {
      if (tty) process.stderr.write("\r\x1b[2K");
      console.log(`${formatEpochRow(e.record)}  | ${formatMemory(e.numTensors)}`);
    } else if (e.type === "unit-end" && e.status.state !== "done") {
      // The same reason (e.g. weights unavailable) is spelled out once, then referred to.
      const message = e.status.message ?? "";
      console.log(`${unitLabel(e.unit)}: ${e.status.state}${explained.has(message) ? " (as above)" : `: ${message}`}`);
      explained.add(message);
    }
  };
  const t0 = Date.now();
  try {
    const result = await runExperiment(config, { resultsDir: values.results, onEvent, shouldStop: () => stopRequested });
    console.log(describeResult(result));
    console.log(`done in ${formatDuration((Date.now() - t0) / 1000)}`);
    return result.failed.length > 0 ? 1 : 0;
  } catch (e) {
    if (e instanceof TrainingStopped) {
      console.log(`stopped; finished epochs are saved in the results store. Run the same command to resume.`);
      return 130;
    }
    throw e;
  }
}

main().then((code) => process.exit(code), (e: unknown) => {
  const err = e as Error;
  // Known input errors get one clear line; anything else keeps its stack for a bug report.
  const known = ["UsageError", "ConfigError", "DataError", "WeightsUnavailableError", "BackendError", "CheckpointError"].includes(err?.name);
  console.error(`error: ${known ? err.message : err?.stack ?? String(e)}`);
  process.exit(known ? 2 : 1);
});
