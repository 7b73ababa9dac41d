// One typed config drives every run: the notebooks, the CLI and the tests all start from a preset
// and override a few knobs. Every knob is visible here, with the reference's value in `full`, and
// so is every environment variable the project reads (`ENVIRONMENT`, read by `readEnvironment`).
import { UserError } from "./errors";

/** Head inits: the reference's two (nn.Linear's bias; log(p / (1 - p))), and that bias with zeroed head weights. */
export type Arm = "vanilla" | "positive_rate" | "positive_rate_zero_head";
/** Backbone start: torchvision's IMAGENET1K_V2 weights, or torchvision's random init. */
export type Backbone = "imagenet" | "scratch";
export type PresetName = "full" | "quick" | "smoke";
export type ModelName = "b1" | "b0" | "tiny";
/** "auto": CIFAR-10 when it is on disk, else the synthetic stand-in (labelled so everywhere). */
export type DataSource = "cifar10" | "synthetic" | "auto";
/** What a run actually trained on, once "auto" is resolved. */
export type DatasetKind = Exclude<DataSource, "auto">;
/**
 * How test metrics are computed. "eval" (default): inference mode, running BatchNorm statistics,
 * no dropout. "train": the reference's quirk (it never called model.eval()): batch-statistics
 * BatchNorm, dropout and stochastic depth active during evaluation. "both": the metrics in eval
 * mode, plus test BCE and ROC-AUC in train mode beside them (one more pass over the test set).
 * Running stats are not updated.
 */
export type EvalMode = "eval" | "train" | "both";

/**
 * How records are analysed. Not part of the results key: they change no training. `eceBins` is
 * the definition of the stored `ece`; the others only shape the statistics read from the store.
 */
export const ANALYSIS = {
  /** Expected calibration error: equal-width bins on the predicted probability (train/metrics.ts). */
  eceBins: 15,
  /** The hockey stick: span of the exponential moving average of step losses, alpha = 2 / (span + 1). */
  catchUpEmaSpan: 10,
  /** Caught up: vanilla's smoothed step loss at most this fraction above the positive-rate arm's. */
  catchUpTolerance: 0.05,
} as const;

/** The reference's two arms: the presets' default, and the grid a projection counts as whole. */
export const REFERENCE_ARMS: readonly Arm[] = ["vanilla", "positive_rate"];
/** Every arm, in the order tables and legends list them; paired differences are each arm minus vanilla. */
export const ARMS: readonly Arm[] = [...REFERENCE_ARMS, "positive_rate_zero_head"];
export const BACKBONES: readonly Backbone[] = ["imagenet", "scratch"];
/** How tables, figures and conclusions name each backbone. */
export const BACKBONE_LABEL: Readonly<Record<Backbone, string>> = { imagenet: "ImageNet weights", scratch: "From scratch" };
export const ARM_LABEL: Readonly<Record<Arm, string>> = { vanilla: "Vanilla", positive_rate: "Positive rate", positive_rate_zero_head: "Positive rate, zero head" };
export const PRESETS: readonly PresetName[] = ["full", "quick", "smoke"];

/**
 * The imbalance sweep (plan "sweep", notebook 05, `--rates`): one store per target positive rate.
 * All negatives are kept, so n test images (90% negative) hold ~0.9 n r / (1 - r) positives at rate
 * r: the test subsets leave the lowest rate at least `minTestPositives` (fewer is refused).
 */
export const SWEEP = {
  rates: { full: [0.1, 0.02, 0.01], quick: [0.1, 0.02, 0.01], smoke: [0.1, 0.02] } as Readonly<Record<PresetName, readonly number[]>>,
  /** On top of the preset. `smoke`'s batches of 32 give its first epoch ~40 steps: room for the hockey stick. */
  overrides: { full: {}, quick: { data: { testLimit: 2500 } }, smoke: { trainBatch: 32, data: { trainLimit: 1280, testLimit: 1200 } } } as Readonly<Record<PresetName, ConfigOverrides>>,
  /** Fewer test positives than this at a rate: refused (ROC-AUC and calibration would rest on a handful of images). */
  minTestPositives: 20,
  /** Positives are only dropped: a split below the target keeps them all; more than this fraction below is refused. */
  rateTolerance: 0.1,
};

export interface ExperimentConfig {
  preset: PresetName;
  data: {
    source: DataSource;
    /** Folder holding `cifar-10-batches-bin/` (CIFAR-10) and `synthetic/` (generated stand-in). */
    dir: string;
    /** Positive class by CIFAR-10 name ("frog") or index (6). The reference used 9 (truck) by mistake. */
    positiveClass: string | number;
    /** Use only the first N training / test images (null: all). Subsets keep the file order. */
    trainLimit: number | null;
    testLimit: number | null;
    /** The sweep's knob: after the limits, both splits' positives subsampled to this rate (data/subsample.ts); null: the data's own. */
    targetPositiveRate: number | null;
  };
  input: {
    /** Resize the short side to this many pixels first (null: keep CIFAR's 32x32). */
    resize: number | null;
    /** Centre crop to this square size (equal to the image size when resize is null). */
    crop: number;
  };
  model: ModelName;
  /** Which halves of the grid to run; a run selects units, it does not change their results. */
  backbones: Backbone[];
  arms: Arm[];
  trials: number;
  epochs: number;
  lr: number;
  momentum: number;
  trainBatch: number;
  testBatch: number;
  evalMode: EvalMode;
  /** Base seed; trial k uses seeds derived from (seed, k), shared by both arms (paired trials). */
  seed: number;
}

/**
 * Overrides accepted on top of a preset: any field of ExperimentConfig but the preset's name;
 * nested objects (data, input) merge field by field, lists replace.
 */
export type ConfigOverrides = {
  [K in Exclude<keyof ExperimentConfig, "preset">]?: ExperimentConfig[K] extends readonly unknown[]
    ? ExperimentConfig[K]
    : ExperimentConfig[K] extends object ? Partial<ExperimentConfig[K]> : ExperimentConfig[K];
};

const REFERENCE_TRAINING = { lr: 1e-4, momentum: 0.9, trainBatch: 64, testBatch: 256, evalMode: "eval" as EvalMode, seed: 0 };

export const PRESET_CONFIGS: Record<PresetName, ExperimentConfig> = {
  // The published experiment: B1 at 240x240, the whole of CIFAR-10, 5 epochs, 10 trials. A GPU job.
  full: {
    preset: "full",
    data: { source: "auto", dir: "data", positiveClass: "frog", trainLimit: null, testLimit: null, targetPositiveRate: null },
    input: { resize: 255, crop: 240 },
    model: "b1",
    backbones: ["imagenet", "scratch"],
    arms: [...REFERENCE_ARMS],
    trials: 10,
    epochs: 5,
    ...REFERENCE_TRAINING,
  },
  // CPU-sized: the same B1 and optimizer at CIFAR's native 32x32 on a 10,000-image subset.
  quick: {
    preset: "quick",
    data: { source: "auto", dir: "data", positiveClass: "frog", trainLimit: 10000, testLimit: 2000, targetPositiveRate: null },
    input: { resize: null, crop: 32 },
    model: "b1",
    backbones: ["imagenet", "scratch"],
    arms: [...REFERENCE_ARMS],
    trials: 2,
    epochs: 3,
    ...REFERENCE_TRAINING,
  },
  // Test-sized: the tiny width/depth-scaled variant on a few hundred images. It uses a larger
  // learning rate than the reference so that two epochs visibly learn; nothing is concluded from it.
  smoke: {
    preset: "smoke",
    data: { source: "auto", dir: "data", positiveClass: "frog", trainLimit: 640, testLimit: 512, targetPositiveRate: null },
    input: { resize: null, crop: 32 },
    model: "tiny",
    backbones: ["imagenet", "scratch"],
    arms: [...REFERENCE_ARMS],
    trials: 2,
    epochs: 2,
    ...REFERENCE_TRAINING,
    lr: 0.05,
  },
};

export class ConfigError extends UserError {
  override name = "ConfigError";
}

/**
 * The version of the numbers this code produces. Bump it with every change that alters a result
 * (data pipeline, initialization, model, loss, optimizer, evaluation, seeds): test/numerics.test.ts
 * pins it next to a fingerprint it recomputes (one short training run of the tiny model), so a
 * numbers-changing change without a bump fails a test. It is part of the results key: results of
 * other code never share a store, and after a bump a run starts a fresh store (the old one stays
 * on disk, and the run names it). Every unit also records it, with the engine kind, in status.json.
 * What each version changed, and by how much: docs/numerics.md.
 */
export const NUMERICS_VERSION = 13;

/** The preset with overrides applied, validated. Throws ConfigError naming the bad field. */
export function makeConfig(preset: PresetName, overrides: ConfigOverrides = {}): ExperimentConfig {
  if (!PRESETS.includes(preset)) {
    throw new ConfigError(`preset: unknown preset "${String(preset)}"; use one of ${PRESETS.join(", ")}`);
  }
  const config = mergeOverrides(PRESET_CONFIGS[preset] as ConfigOverrides, overrides) as ExperimentConfig;
  config.preset = preset;
  validateConfig(config);
  return config;
}

/** `b` over `a`: nested objects (data, input) merge field by field, lists and values replace, undefined is skipped. */
export function mergeOverrides(a: ConfigOverrides, b: ConfigOverrides): ConfigOverrides {
  const merged: Record<string, unknown> = {};
  for (const source of [a, b]) {
    for (const [key, value] of Object.entries(source)) {
      if (value === undefined) continue;
      const current = merged[key];
      const nested = value !== null && typeof value === "object" && !Array.isArray(value);
      merged[key] = nested ? { ...(current as object | undefined), ...(value as object) } : Array.isArray(value) ? [...value] : value;
    }
  }
  return merged as ConfigOverrides;
}

/** One line naming what a config trains, for headers and logs. */
export function describeSetting(c: ExperimentConfig): string {
  const input = c.input.resize === null ? `${c.input.crop}x${c.input.crop}` : `resize ${c.input.resize}, crop ${c.input.crop}`;
  const images = (n: number | null): string => (n === null ? "all" : String(n));
  const rate = c.data.targetPositiveRate === null ? "" : ` subsampled to positive rate ${c.data.targetPositiveRate}`;
  return `EfficientNet-${c.model.toUpperCase()} at ${input}, ${images(c.data.trainLimit)} train / ${images(c.data.testLimit)} test images${rate}, ` +
    `${c.trials} trial${c.trials === 1 ? "" : "s"} x ${c.epochs} epochs, SGD lr ${c.lr} momentum ${c.momentum}, batch ${c.trainBatch}, ${c.evalMode === "both" ? "eval-mode evaluation (train mode beside it)" : `${c.evalMode}-mode evaluation`}`;
}

/**
 * A final batch of exactly one image is rejected when the config is built (and again once the data
 * size is known, before anything is written), never met mid-run: BatchNorm in training mode over
 * one image has one value per channel where the feature maps are 1x1 (CIFAR's 32x32 input), and
 * both PyTorch and this model raise there at the end of an epoch. Neither dropping that image nor
 * merging it into the previous batch is done silently; the message names sizes that work. It
 * applies to training batches, and to test batches when evaluation uses batch statistics
 * (`evalMode` "train").
 */
export function singleImageBatchProblem(c: Pick<ExperimentConfig, "trainBatch" | "testBatch" | "evalMode">, trainSize: number, testSize: number | null): string | null {
  const splits: Array<[string, string, number, number]> = [["trainBatch", "training", trainSize, c.trainBatch]];
  if (c.evalMode === "train" && testSize !== null) splits.push(["testBatch", "test", testSize, c.testBatch]);
  for (const [field, split, size, batch] of splits) {
    if (size > 1 && batch > 1 && size % batch === 1) {
      return `config.${field}: ${size} ${split} images in batches of ${batch} leave a last batch of 1 image, on which BatchNorm cannot use ` +
        `batch statistics (PyTorch raises there too); use a batch size of ${batch - 1} or ${batch + 1}, or ${size - 1} images`;
    }
  }
  return null;
}

/** Throws the ConfigError of singleImageBatchProblem, if any. */
export function checkBatchSizes(c: ExperimentConfig, trainSize: number, testSize: number | null): void {
  const problem = singleImageBatchProblem(c, trainSize, testSize);
  if (problem !== null) throw new ConfigError(problem);
}

function check(ok: boolean, field: string, message: string): void {
  if (!ok) throw new ConfigError(`config.${field}: ${message}`);
}

const isInt = (x: unknown, min: number, max = Number.MAX_SAFE_INTEGER): boolean =>
  typeof x === "number" && Number.isInteger(x) && x >= min && x <= max;

export function validateConfig(c: ExperimentConfig): void {
  check(["cifar10", "synthetic", "auto"].includes(c.data.source), "data.source", `"${c.data.source}" is not cifar10, synthetic or auto`);
  check(typeof c.data.dir === "string" && c.data.dir.length > 0, "data.dir", "must be a folder path");
  check(c.data.trainLimit === null || isInt(c.data.trainLimit, 2), "data.trainLimit", `${c.data.trainLimit} must be null or an integer >= 2`);
  check(c.data.testLimit === null || isInt(c.data.testLimit, 2), "data.testLimit", `${c.data.testLimit} must be null or an integer >= 2`);
  const rate = c.data.targetPositiveRate;
  check(rate === null || (typeof rate === "number" && rate > 0 && rate < 1), "data.targetPositiveRate", `${rate} must be null (the data's own rate) or a number in (0, 1)`);
  check(c.input.resize === null || isInt(c.input.resize, 8, 1024), "input.resize", `${c.input.resize} must be null or an integer in 8..1024`);
  check(isInt(c.input.crop, 8, 1024), "input.crop", `${c.input.crop} must be an integer in 8..1024`);
  check(c.input.resize === null ? c.input.crop <= 32 : c.input.crop <= c.input.resize, "input.crop",
    `${c.input.crop} is larger than the image it crops (${c.input.resize ?? 32})`);
  check(["b1", "b0", "tiny"].includes(c.model), "model", `"${c.model}" is not b1, b0 or tiny`);
  check(c.backbones.length > 0 && c.backbones.every((b) => BACKBONES.includes(b)), "backbones", `${JSON.stringify(c.backbones)} must be a non-empty list of ${BACKBONES.join(", ")}`);
  check(c.arms.length > 0 && c.arms.every((a) => ARMS.includes(a)), "arms", `${JSON.stringify(c.arms)} must be a non-empty list of ${ARMS.join(", ")}`);
  check(isInt(c.trials, 1, 1000), "trials", `${c.trials} must be an integer in 1..1000`);
  check(isInt(c.epochs, 0, 1000), "epochs", `${c.epochs} must be an integer in 0..1000`);
  check(typeof c.lr === "number" && c.lr > 0 && c.lr <= 10, "lr", `${c.lr} must be in (0, 10]`);
  check(typeof c.momentum === "number" && c.momentum >= 0 && c.momentum < 1, "momentum", `${c.momentum} must be in [0, 1)`);
  check(isInt(c.trainBatch, 1, 65536), "trainBatch", `${c.trainBatch} must be an integer in 1..65536`);
  check(isInt(c.testBatch, 1, 65536), "testBatch", `${c.testBatch} must be an integer in 1..65536`);
  check(c.evalMode === "eval" || c.evalMode === "train" || c.evalMode === "both", "evalMode", `"${c.evalMode}" is not eval, train or both`);
  check(isInt(c.seed, 0, 2 ** 32 - 1), "seed", `${c.seed} must be an integer in 0..2^32-1`);
  check(typeof c.data.positiveClass === "string" || isInt(c.data.positiveClass, 0, 9), "data.positiveClass",
    `${c.data.positiveClass} must be a CIFAR-10 class name or an index 0..9`);
  // With limits the sizes are known now; without, runExperiment checks once the data is loaded.
  if (c.data.trainLimit !== null) checkBatchSizes(c, c.data.trainLimit, c.data.testLimit);
}

// ---------------------------------------------------------------------------------------------
/** The environment: every variable the project reads (read here, nowhere else), name -> what it sets; `make help`, the README and `--help` list these. */
export const ENVIRONMENT = {
  BIAS_INIT_PRESET: "preset when none is given (smoke | quick | full; default: full on CUDA, quick elsewhere)",
  BIAS_INIT_RESULTS: "results store root for the CLI and the notebooks (default: results)",
  BIAS_INIT_REPORTS: "folder for exported figures and `make report`'s HTML (default: reports)",
  BIAS_INIT_DATA: "data folder for the CLI, the notebooks and `make data` (default: data)",
  BIAS_INIT_BACKEND: "engine: auto | cuda | native | js (a forced engine that does not load is an error; js also skips the automatic native build)",
  BIAS_INIT_NATIVE_DIR: "where `make native` / `make native-gpu` build the native engines and where runs look for them (default: .native in the repository)",
  BIAS_INIT_CUSTOM_OPS: "1 (default): training BatchNorm + SiLU, the depthwise convolutions and squeeze-excitation's passes on this project's kernels where `make native` built them and the CPU has AVX2 and FMA (their AVX-512 build where it has AVX-512F); avx2: their AVX2 build even there; 0: TensorFlow's own ops (for A/B runs; `make doctor` says which run)",
  BIAS_INIT_SIGNAL_GUARD: "read by the native engine's binding as it loads: 0 turns off its signal guard (for the comparison in test/signal_guard.test.ts; without it a signal during a matrix product corrupted memory, docs/native.md)",
  BIAS_INIT_CUDA_ENV: "set by the GPU build's cuda-env.sh once it is sourced; the CLI re-executes itself through that file otherwise",
  BIAS_INIT_DIST_DIR: "where tools/run-ts.sh compiles the entry points make run, its workers and the cluster tasks run (default: dist in the repository)",
  LD_LIBRARY_PATH: "read by `make doctor` (where the GPU engine's CUDA libraries are looked up besides the build's run paths; cuda-env.sh sets it)",
  CIFAR10_TARBALL: "a local copy of cifar-10-binary.tar.gz for `make data` (md5-checked)",
  EFFICIENTNET_B1_WEIGHTS: "a local copy of efficientnet_b1-c27df63c.pth (SHA-256 prefix checked)",
  EFFICIENTNET_B0_WEIGHTS: "a local copy of efficientnet_b0_rwightman-7f5810bc.pth",
  CHROMIUM_PATH: "Chromium/Chrome binary for figure export and the browser tests (default: /usr/bin/chromium)",
  BIAS_INIT_LOCK_STALE_S: "seconds without a heartbeat after which a unit's lock held on another host is taken over (default: 600)",
  BIAS_INIT_LOCK_WAIT_S: "seconds a run waits at its end for units other processes are training (default: 86400)",
  BIAS_INIT_CRASH_AFTER: "test hook: WRITE:N kills the process right after the N-th store write named WRITE (* = any)",
  BIAS_INIT_FUZZ_CASES: "cases of test/pth_fuzz.test.ts's seeded .pth fuzz (default 5000; e.g. 100000 for a long run)",
  TF_NUM_INTRAOP_THREADS: "TensorFlow's thread count per op (its default: one per core); `make doctor` names it; `--workers N` on a CPU gives each worker cores / N unless set; 1 trained 32x32 1.5x faster on a 2-core AMD guest and 240x240 30% slower (docs/performance.md)",
  CUDA_VISIBLE_DEVICES: "the GPU(s) a process may use; `--workers` sets one per worker (from --gpus or `nvidia-smi -L`), Slurm sets it per task with --gres=gpu:1; a worker names it in its log",
} as const;

export type EnvironmentName = keyof typeof ENVIRONMENT;

/**
 * `--dry-run`'s short measured run (src/experiment/speed_probe.ts): a few warm-up steps, then timed
 * training steps until `timedSteps` or `maxSeconds` (at least `minTimedSteps`), then one timed
 * evaluation batch. On a CPU engine the batches are capped by pixels so that a dry run of `full`
 * (240x240, batch 64) fits in memory; rates are per image either way.
 */
export const SPEED_PROBE = {
  warmupSteps: 2,
  timedSteps: 20,
  minTimedSteps: 3,
  maxSeconds: 60,
  /** 16 images at 240x240; 32x32 batches up to 900 images are not capped. */
  cpuTrainBatchPixels: 16 * 240 * 240,
  cpuEvalBatchPixels: 64 * 240 * 240,
} as const;

/** The project's environment variables, trimmed; unset or blank gives null. */
export function readEnvironment(env: NodeJS.ProcessEnv = process.env): Record<EnvironmentName, string | null> {
  const out = {} as Record<EnvironmentName, string | null>;
  for (const name of Object.keys(ENVIRONMENT) as EnvironmentName[]) {
    const value = env[name]?.trim();
    out[name] = value ? value : null;
  }
  return out;
}

/** BIAS_INIT_PRESET if set; else the reference's `full` on a CUDA engine and `quick` elsewhere. */
export function defaultPreset(onCuda: boolean, env: NodeJS.ProcessEnv = process.env): PresetName {
  const value = readEnvironment(env).BIAS_INIT_PRESET;
  if (value === null) return onCuda ? "full" : "quick";
  if (!(PRESETS as readonly string[]).includes(value)) throw new ConfigError(`BIAS_INIT_PRESET: "${value}" is not a preset; use one of ${PRESETS.join(", ")}`);
  return value as PresetName;
}

/** Where figures and reports are written: BIAS_INIT_REPORTS, else "reports". */
export function defaultReportsDir(env: NodeJS.ProcessEnv = process.env): string {
  return readEnvironment(env).BIAS_INIT_REPORTS ?? "reports";
}

/** The results store root: BIAS_INIT_RESULTS, else "results". */
export function defaultResultsDir(env: NodeJS.ProcessEnv = process.env): string {
  return readEnvironment(env).BIAS_INIT_RESULTS ?? "results";
}

/** The data folder: BIAS_INIT_DATA, else "data" (the presets' data.dir). */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return readEnvironment(env).BIAS_INIT_DATA ?? PRESET_CONFIGS.full.data.dir;
}

/**
 * Unit locks (src/experiment/unit_lock.ts). A lock whose owner ran on this host is stale once that
 * process is gone; one from another host once its heartbeat is older than `staleMs`. The heartbeat
 * is refreshed every `heartbeatMs` while a unit trains (between steps and at each epoch), so
 * `staleMs` must exceed the longest step or evaluation: 10 minutes covers B1 at 240x240 on a CPU.
 * A run that meets units locked by others polls every `pollMs` at its end, for at most `waitMs`.
 */
export interface LockSettings {
  staleMs: number;
  heartbeatMs: number;
  pollMs: number;
  waitMs: number;
}

/**
 * Workers (src/experiment/worker*.ts): each writes its events to `<results>/workers/<host>-<pid>.jsonl`
 * (a step at most every `stepLogEveryMs`; the file's mtime is refreshed every `heartbeatMs`), and the
 * process watching them (`--workers N`, a notebook's `run(plan, { workers })`) reads those logs and
 * the store every `pollMs`.
 */
export const WORKERS = { folder: "workers", stepLogEveryMs: 2_000, heartbeatMs: 30_000, pollMs: 1_000 } as const;

export const LOCK_DEFAULTS = { staleS: 600, waitS: 86_400 } as const;

function seconds(name: EnvironmentName, value: string | null, fallback: number, min: number): number {
  if (value === null) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new ConfigError(`${name}: "${value}" is not a number of seconds >= ${min}; set a number or unset it`);
  return n;
}

export function lockSettings(env: NodeJS.ProcessEnv = process.env): LockSettings {
  const e = readEnvironment(env);
  const staleMs = 1000 * seconds("BIAS_INIT_LOCK_STALE_S", e.BIAS_INIT_LOCK_STALE_S, LOCK_DEFAULTS.staleS, 0.5);
  const waitMs = 1000 * seconds("BIAS_INIT_LOCK_WAIT_S", e.BIAS_INIT_LOCK_WAIT_S, LOCK_DEFAULTS.waitS, 0);
  return { staleMs, heartbeatMs: Math.min(30_000, staleMs / 5), pollMs: Math.min(5_000, staleMs / 4), waitMs };
}
