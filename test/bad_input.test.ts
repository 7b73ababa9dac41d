// Bad input gets one clear error naming what is wrong, and nothing is written to results/.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { makeConfig, ConfigError } from "../src/config";
import { runExperiment, storeFor } from "../src/experiment/grid";
import { initBackend } from "../src/engine/backend";
import { BinaryClassifier } from "../src/model/head";
import { makeRng } from "../src/rng";
import { writeSyntheticCifar10 } from "../src/data/synthetic";

const ROOT = path.resolve(__dirname, "..");

const made: string[] = [];
after(() => made.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function tempDirs(): { data: string; results: string } {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bias-bad-"));
  made.push(tmp);
  return { data: path.join(tmp, "data"), results: path.join(tmp, "results") };
}

/** A CIFAR-10 folder in the official layout, then damaged by `damage`. */
function cifarWith(damage: (batchDir: string) => void): { data: string; results: string } {
  const dirs = tempDirs();
  const batchDir = writeSyntheticCifar10(dirs.data, { perTrainBatch: 50, testCount: 50, seed: 1 });
  damage(batchDir);
  return dirs;
}

async function expectRunError(dirs: { data: string; results: string }, pattern: RegExp, overrides = {}): Promise<void> {
  const config = makeConfig("smoke", { data: { source: "cifar10", dir: dirs.data }, backbones: ["scratch"], trials: 1, epochs: 1, ...overrides });
  await assert.rejects(runExperiment(config, { resultsDir: dirs.results }), pattern);
  assert.equal(fs.existsSync(dirs.results), false, "nothing was written to results/");
}

test("a truncated batch file is named, and nothing is written", async () => {
  const dirs = cifarWith((d) => {
    const f = path.join(d, "data_batch_1.bin");
    fs.truncateSync(f, fs.statSync(f).size - 100);
  });
  await expectRunError(dirs, /data_batch_1\.bin.*(truncated|multiple of 3073)/s);
});

test("a label outside 0..9 is named with its record, and nothing is written", async () => {
  const dirs = cifarWith((d) => {
    const f = path.join(d, "test_batch.bin");
    const bytes = fs.readFileSync(f);
    bytes[3073 * 2] = 10;
    fs.writeFileSync(f, bytes);
  });
  await expectRunError(dirs, /test_batch\.bin.*label/s);
});

test("a missing batch file is named", async () => {
  const dirs = cifarWith((d) => fs.rmSync(path.join(d, "data_batch_3.bin")));
  await expectRunError(dirs, /data_batch_3\.bin/);
});

test("a missing data folder says what to run", async () => {
  await expectRunError(tempDirs(), /make data/);
});

test("an unknown class name lists the valid ones", async () => {
  const dirs = cifarWith(() => undefined);
  await expectRunError(dirs, /toad.*frog/s, { data: { source: "cifar10", dir: dirs.data, positiveClass: "toad" } });
});

test("out-of-range config values name the field", () => {
  assert.throws(() => makeConfig("smoke", { lr: -1 }), (e: unknown) => e instanceof ConfigError && /config\.lr/.test(e.message));
  assert.throws(() => makeConfig("smoke", { trials: 0 }), /config\.trials/);
  assert.throws(() => makeConfig("smoke", { epochs: 1.5 }), /config\.epochs/);
  assert.throws(() => makeConfig("smoke", { momentum: 1 }), /config\.momentum/);
  assert.throws(() => makeConfig("smoke", { input: { resize: null, crop: 64 } }), /config\.input\.crop/);
  assert.throws(() => makeConfig("smoke", { arms: ["vanila" as never] }), /config\.arms/);
  assert.throws(() => makeConfig("nope" as never), /unknown preset/);
});

test("the CLI prints one clear line and exits 2 on bad input, writing nothing", () => {
  const dirs = tempDirs();
  const run = (args: string[]) => spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli.ts"), "--data-dir", dirs.data, "--results", dirs.results, ...args],
    { cwd: ROOT, env: process.env, encoding: "utf8" });
  for (const [args, pattern] of [
    [["--preset", "smoke", "--trials", "0"], /config\.trials/],
    [["--preset", "smoke", "--lr", "abc"], /--lr: "abc" is not a number/],
    [["--preset", "smoke", "--data", "cifar10"], /make data/],
    [["--preset", "huge"], /unknown preset/],
  ] as Array<[string[], RegExp]>) {
    const r = run(args);
    assert.equal(r.status, 2, `${args.join(" ")}: exit ${r.status}\n${r.stderr}`);
    const errorLines = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
    assert.equal(errorLines.length, 1, r.stderr);
    assert.match(r.stderr, pattern);
  }
  assert.equal(fs.existsSync(dirs.results), false);
});

// Every error a user can cause, through the entry point a user runs: exit 2, exactly one line,
// that line starting with "error:" and naming the problem, no stack trace, nothing written.
describe("user errors at the entry points", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bias-user-errors-"));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const good = path.join(tmp, "good");
  writeSyntheticCifar10(good, { perTrainBatch: 50, testCount: 50, seed: 1 });
  const corrupt = path.join(tmp, "corrupt");
  const corruptBatch = path.join(writeSyntheticCifar10(corrupt, { perTrainBatch: 50, testCount: 50, seed: 1 }), "data_batch_2.bin");
  fs.truncateSync(corruptBatch, 3073 * 10 + 7);
  const notWeights = path.join(tmp, "not-b1.pth");
  fs.writeFileSync(notWeights, "these bytes are not torchvision's efficientnet_b1 weights");
  const results = path.join(tmp, "results");

  // Run from the temporary folder, so a default path (data/, weights/, results/) can never land in the checkout.
  const tsx = path.join(ROOT, "node_modules/tsx/dist/loader.mjs");
  const run = (script: string, args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, ["--import", tsx, path.join(ROOT, script), ...args],
      { cwd: tmp, env: { ...process.env, BIAS_INIT_RESULTS: results, ...env }, encoding: "utf8", timeout: 120_000 });
  const cli = (...args: string[]) => ["--preset", "smoke", "--backbones", "scratch", "--trials", "1", "--epochs", "0", ...args];

  // A fake `nvidia-smi` that lists one GPU, first on PATH: the machine "has" a GPU the engine does not use.
  const fakeBin = path.join(tmp, "bin");
  fs.mkdirSync(fakeBin);
  fs.writeFileSync(path.join(fakeBin, "nvidia-smi"), "#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-00000000-0000-0000-0000-000000000000)'\n", { mode: 0o755 });
  const withGpu = { PATH: `${fakeBin}${path.delimiter}${process.env.PATH ?? ""}`, BIAS_INIT_BACKEND: "js" };
  const empty = path.join(tmp, "no-data");
  const smallRun = (...args: string[]) => ["--preset", "smoke", "--backbones", "scratch", "--arms", "vanilla", "--trials", "1", "--epochs", "1",
    "--data", "cifar10", "--data-dir", good, "--train-limit", "64", "--test-limit", "50", ...args];
  // A store holding epoch 0 of that run's unit, as another engine (or a checkpoint of another model) left it.
  const otherStore = path.join(tmp, "other-results");
  const partialUnit = async (how: "engine" | "optimizer"): Promise<void> => {
    fs.rmSync(otherStore, { recursive: true, force: true });
    const engine = (await initBackend()).kind;
    const config = makeConfig("smoke", { backbones: ["scratch"], arms: ["vanilla"], trials: 1, epochs: 1, data: { source: "cifar10", dir: good, trainLimit: 64, testLimit: 50 } });
    const { store } = storeFor(config, otherStore);
    store.init({});
    const unit = { backbone: "scratch" as const, arm: "vanilla" as const, trial: 0 };
    const recorded = how === "engine" ? (engine === "js" ? "native-cpu" : "js") : engine;
    const model = new BinaryClassifier("tiny", makeRng(1, "init"));
    const weights = [...model.namedVariables()].map(([name, v]) => ({ name, dtype: "float32" as const, shape: v.shape, data: v.dataSync() as Float32Array }));
    const optimizer = how === "optimizer" ? [{ name: "features.0.0.weight", dtype: "float32" as const, shape: [1, 2], data: new Float32Array(2) }] : [];
    model.dispose();
    store.appendEpoch(unit, { backbone: "scratch", arm: "vanilla", trial: 0, epoch: 0, loss: 0.7, roc_auc: 0.5, output_bias_value: 0, train_loss: null,
      wall_s: 1, images_per_s: null, seed: 0, dataset: "synthetic", backend: recorded }, { epoch: 0, weights, optimizer }, null);
    store.setStatus(unit, "running", null, recorded);
  };

  const cases: Array<{ what: string; script: string; args: string[]; env?: Record<string, string>; pattern: RegExp; setup?: () => Promise<void> }> = [
    { what: "unknown class", script: "src/cli.ts", args: cli("--data", "cifar10", "--data-dir", good, "--positive", "toad"),
      pattern: /^error: data\.positiveClass: unknown CIFAR-10 class "toad"; use one of .*frog/ },
    { what: "bad config value", script: "src/cli.ts", args: cli("--lr=-1"), pattern: /^error: config\.lr: -1 must be in \(0, 10\]/ },
    { what: "corrupt batch file", script: "src/cli.ts", args: cli("--data", "cifar10", "--data-dir", corrupt), pattern: /^error: .*data_batch_2\.bin/ },
    { what: "wrong checksum of a local CIFAR tarball", script: "src/data/main.ts", args: ["--dir", path.join(tmp, "data-dl"), "--local", notWeights],
      pattern: /^error: local copy .*not-b1\.pth: wrong md5 checksum/ },
    { what: "a local weights file with the wrong hash", script: "src/cli.ts",
      args: ["--preset", "smoke", "--model", "b1", "--backbones", "imagenet", "--trials", "1", "--epochs", "0", "--data", "synthetic", "--data-dir", path.join(tmp, "syn"), "--train-limit", "64", "--test-limit", "64"],
      env: { EFFICIENTNET_B1_WEIGHTS: notWeights }, pattern: /^error: local copy .*not-b1\.pth: wrong sha256 checksum \(expected c27df63c/ },
    { what: "a local weights file with the wrong hash, through make weights", script: "src/model/weights_main.ts", args: ["--dir", path.join(tmp, "weights"), "--local", notWeights],
      pattern: /^error: local copy .*not-b1\.pth: wrong sha256 checksum/ },
    { what: "a train limit leaving a last batch of one image", script: "src/cli.ts", args: smallRun("--train-limit", "65"),
      pattern: /^error: config\.trainBatch: 65 training images in batches of 64 leave a last batch of 1 image, on which BatchNorm cannot use batch statistics \(PyTorch raises there too\); use a batch size of 63 or 65, or 64 images$/ },
    { what: "all the data in batches leaving one image (known once the data is loaded)", script: "src/cli.ts", args: smallRun("--train-limit", "all", "--train-batch", "249"),
      pattern: /^error: config\.trainBatch: 250 training images in batches of 249 leave a last batch of 1 image/ },
    { what: "the full preset without CIFAR-10", script: "src/cli.ts", args: ["--preset", "full", "--data-dir", empty, "--epochs", "0"],
      pattern: /^error: config\.data\.source: the full preset found no CIFAR-10 in .*no-data\/ and would train on the synthetic stand-in; run `make data`, or pass --data synthetic/ },
    { what: "the full preset on the CPU while an NVIDIA GPU is visible", script: "src/cli.ts", args: ["--preset", "full", "--data-dir", empty], env: withGpu,
      pattern: /^error: --preset full: an NVIDIA GPU is visible but this run's engine is js \(why: see above\); build the CUDA engine \(make native-gpu\), or pass --allow-cpu/ },
    { what: "resuming a unit started on another engine", script: "src/cli.ts", args: smallRun(), env: { BIAS_INIT_RESULTS: otherStore }, setup: () => partialUnit("engine"),
      pattern: /^error: .*scratch__vanilla__trial-0: trained on the (js|native-cpu) engine up to epoch 0, this run's engine is (js|native-cpu|cuda), and one unit must not mix engines; resume it on \1 \(BIAS_INIT_BACKEND=(js|native)\), start fresh under a new results folder \(--results DIR\), or pass --allow-engine-change/ },
    { what: "a checkpoint whose optimizer state does not fit the model", script: "src/cli.ts", args: smallRun(), env: { BIAS_INIT_RESULTS: otherStore }, setup: () => partialUnit("optimizer"),
      pattern: /^error: .*scratch__vanilla__trial-0\/checkpoint-0: optimizer state: \d+ problem\(s\), first: momentum buffer of "features\.0\.0\.weight" is float32 \[1, 2\], the parameter float32 \[.*\]; .*delete it/ },
    { what: "a sweep rate leaving fewer than 20 test positives (checked for every rate before the first is trained)", script: "src/cli.ts",
      args: ["--preset", "smoke", "--plan", "sweep", "--rates", "0.1,0.01", "--data", "synthetic", "--data-dir", path.join(tmp, "syn-sweep")],
      pattern: /^error: data\.targetPositiveRate: 0\.01 leaves 11 positives among 1091 test images \(fewer than 20: too few for ROC-AUC and calibration\); use more test images \(--test-limit 2200 or more\) or a higher rate$/ },
    { what: "a sweep rate above the data's own", script: "src/cli.ts", args: ["--preset", "smoke", "--rates", "0.5", "--data", "synthetic", "--data-dir", path.join(tmp, "syn-sweep")],
      pattern: /^error: data\.targetPositiveRate: 0\.5 is above the train set's own positive rate 0\.1000 \(64 of 640 images\); positives can only be dropped, never added/ },
    { what: "rates that are not rates", script: "src/cli.ts", args: ["--preset", "smoke", "--rates", "0.1,2"], pattern: /^error: --rates: "0\.1,2" is not a list of positive rates in \(0, 1\); give e\.g\. 0\.1,0\.02,0\.01$/ },
    { what: "a bad lock timeout", script: "src/cli.ts", args: smallRun(), env: { BIAS_INIT_LOCK_STALE_S: "soon" },
      pattern: /^error: BIAS_INIT_LOCK_STALE_S: "soon" is not a number of seconds >= 0\.5; set a number or unset it$/ },
    { what: "a malformed crash hook", script: "src/cli.ts", args: smallRun(), env: { BIAS_INIT_CRASH_AFTER: "epochs.jsonl" },
      pattern: /^error: BIAS_INIT_CRASH_AFTER: "epochs\.jsonl" is not <write>:<n> with n >= 1 and <write> one of \*, config\.json\.tmp/ },
  ];
  for (const c of cases) {
    test(c.what, async () => {
      await c.setup?.();
      const r = run(c.script, c.args, c.env);
      assert.equal(r.status, 2, `exit ${r.status}\n${r.stderr}`);
      // The progress status line goes to stderr too once training has started (the optimizer state is read when its unit resumes).
      const lines = r.stderr.split("\n").filter((l) => l.trim() !== "" && !/absl|oneDNN|port\.cc|cpu_feature_guard|^training \d+ unit\(s\), \d+ steps, into /.test(l));
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], c.pattern);
      assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
      assert.equal(fs.existsSync(results), false, "nothing written to the results store");
    });
  }

  test("a .pth that does not fit B1, as it reaches an entry point", () => {
    // Any such file fails the SHA-256 check first on the CLI and make weights; the shape check
    // behind it raises this error, shown here through the same runMain every entry point uses.
    const script = `const { runMain } = require(${JSON.stringify(path.join(ROOT, "src/errors"))});
const { loadStateDict } = require(${JSON.stringify(path.join(ROOT, "src/model/pretrained"))});
const { buildEfficientNet } = require(${JSON.stringify(path.join(ROOT, "src/model/efficientnet"))});
const { efficientNetArchitecture, variablePlan } = require(${JSON.stringify(path.join(ROOT, "src/model/architecture"))});
const { makeRng } = require(${JSON.stringify(path.join(ROOT, "src/rng"))});
runMain(async () => {
  const b0 = new Map(variablePlan(efficientNetArchitecture("b0")).map((s) => [s.key, { dtype: "float32", shape: s.torchShape, data: new Float32Array(s.torchShape.reduce((a, b) => a * b, 1)) }]));
  loadStateDict(buildEfficientNet("b1", makeRng("x")), b0, "checkpoint b0.pth");
  return 0;
});`;
    const r = spawnSync(process.execPath, ["--import", "tsx", "-e", script], { cwd: ROOT, env: process.env, encoding: "utf8", timeout: 120_000 });
    assert.equal(r.status, 2, r.stderr);
    const lines = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^error: checkpoint b0\.pth: does not fit efficientnet b1 \(128 problem\(s\), first: missing features\.1\.1\.block\.0\.0\.weight/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  });

  test("with a GPU visible but unused, every run says why; --allow-cpu lets the full preset run; --allow-engine-change resumes", async () => {
    const r = run("src/cli.ts", ["--preset", "full", "--allow-cpu", "--model", "tiny", "--data", "cifar10", "--data-dir", good,
      "--backbones", "scratch", "--arms", "vanilla", "--trials", "1", "--epochs", "0", "--train-limit", "64", "--test-limit", "16"], withGpu);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^note: an NVIDIA GPU is visible \(GPU 0: NVIDIA H200 \(UUID: GPU-0+-0000-0000-0000-0+\)\) but no CUDA engine loaded, so this run uses the CPU; the GPU engines tried:\n {2}none \(BIAS_INIT_BACKEND chose another engine\)\n {2}to use the GPU, build the CUDA engine: `make native-gpu`/m);
    await partialUnit("engine");
    const resumed = run("src/cli.ts", smallRun("--allow-engine-change"), { BIAS_INIT_RESULTS: otherStore });
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stdout, /1 of 1 unit\(s\) complete/);
  });

  test("BIAS_INIT_RESULTS is where the CLI writes its store", () => {
    const store = path.join(tmp, "elsewhere");
    const r = run("src/cli.ts", cli("--data", "synthetic", "--data-dir", path.join(tmp, "syn2")), { BIAS_INIT_RESULTS: store });
    assert.equal(r.status, 0, r.stderr);
    const hashes = fs.readdirSync(store);
    assert.equal(hashes.length, 1, hashes.join(","));
    assert.ok(fs.existsSync(path.join(store, hashes[0], "scratch__vanilla__trial-0", "epochs.jsonl")));
    assert.match(r.stdout, new RegExp(`results: ${store.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
  });
});
