// The notebooks themselves: the committed files (the project's kernel, no outputs, `make strip`'s
// form), every src/ module under tslab's compiler, and the real notebooks executed through the
// project's tslab kernel. What they show, tested without a kernel (output bundles, conclusions), is
// in test/notebook_outputs.test.ts.
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { makeConfig, mergeOverrides } from "../src/config";
import { storeFor } from "../src/experiment/grid";
import { planOverrides, planRates } from "../src/experiment/plans";
import { rateConfigs } from "../src/experiment/sweep";
import { entropyNats } from "../src/maths";
import { checkDrawn, chromiumMissing, measure } from "./helpers/report_browser";

const ROOT = path.resolve(__dirname, "..");
const PYTHON = path.join(ROOT, ".venv", "bin", "python");
const noPython = fs.existsSync(PYTHON) ? false : `${PYTHON} is missing: run \`make setup\``;
// tslab's own version strings: the TypeScript it compiles notebooks with is what the kernel reports.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const tslabVersions = (require("tslab/dist/public") as { versions: { typescript: string } }).versions;

// ---------------------------------------------------------------------------------------------
// The committed notebooks: nbformat 4, the project's kernel, no outputs (reports/ has executed copies).

test("committed notebooks use the project's kernel and carry no outputs", () => {
  const dir = path.join(ROOT, "notebooks");
  const names = fs.readdirSync(dir).filter((f) => f.endsWith(".ipynb")).sort();
  assert.deepEqual(names, ["00_walkthrough.ipynb", "01_imagenet_weights.ipynb", "02_from_scratch.ipynb", "03_convergence.ipynb", "04_summary.ipynb", "05_imbalance_sweep.ipynb"]);
  for (const name of names) {
    const nb = JSON.parse(fs.readFileSync(path.join(dir, name), "utf8")) as {
      nbformat: number; nbformat_minor: number; metadata: { kernelspec?: { name?: string } };
      cells: Array<{ cell_type: string; id?: string; outputs?: unknown[]; execution_count?: number | null; source: string | string[] }>;
    };
    assert.equal(nb.nbformat, 4, name);
    assert.ok(nb.nbformat_minor >= 5, `${name}: nbformat 4.5+ (cell ids)`);
    assert.equal(nb.metadata.kernelspec?.name, "bias-init-tslab", `${name}: kernelspec`);
    const ids = nb.cells.map((c) => c.id);
    assert.equal(new Set(ids).size, ids.length, `${name}: cell ids must be unique`);
    for (const [i, cell] of nb.cells.entries()) {
      if (cell.cell_type !== "code") continue;
      assert.deepEqual(cell.outputs, [], `${name} cell ${i}: outputs must be cleared before committing (Edit > Clear Outputs of All Cells)`);
      assert.equal(cell.execution_count, null, `${name} cell ${i}: execution_count`);
    }
    const first = nb.cells.find((c) => c.cell_type === "code");
    assert.match(joined(first?.source), /const nb = await notebookSetup\(/, `${name}: the first code cell calls notebookSetup()`);
    // What the project's kernel reports (tools/jupyter/kernels/bias-init-tslab/start_tslab.js), so that saving does not rewrite it.
    assert.deepEqual((nb.metadata as Record<string, unknown>).language_info,
      { name: "typescript", file_extension: ".ts", mimetype: "text/typescript", version: tslabVersions.typescript }, `${name}: language_info`);
  }
});

test("committed notebooks are in the form `make strip` writes (what a saved, stripped notebook becomes byte for byte)", { skip: noPython }, () => {
  const r = spawnSync(PYTHON, [path.join(ROOT, "tools/jupyter/strip_notebooks.py"), "--check"], { cwd: ROOT, encoding: "utf8" });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});

// ---------------------------------------------------------------------------------------------
// tslab compiles what notebooks import with its own TypeScript 5.0.4 and its own options (not
// strict, lib es2022, ...), which can reject code that `tsc -p .` accepts. Same compiler, no kernel.

interface TslabDiagnostic {
  fileName?: string;
  start: { line: number; character: number };
  messageText: string;
}
interface TslabConverter {
  convert(prevDecl: string, src: string): { diagnostics: TslabDiagnostic[] };
  close(): void;
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith(".ts") ? [p] : [];
  });
}

test("every src/ module compiles under tslab's compiler, as notebooks import it", () => {
  const cwd = process.cwd();
  process.chdir(ROOT); // tslab compiles relative to the working directory, like the kernel started by launch.sh
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { createConverter } = require("tslab/dist/converter") as { createConverter: () => TslabConverter };
  const converter = createConverter();
  try {
    const imports = sourceFiles(path.join(ROOT, "src")).map((f) => `import "./${path.relative(ROOT, f).replace(/\\/g, "/").replace(/\.ts$/, "")}";`);
    const { diagnostics } = converter.convert("", imports.join("\n"));
    const described = diagnostics.map((d) => `${d.fileName ?? "(a file imported by the cell)"} ${d.start.line + 1}:${d.start.character + 1} ${d.messageText}`);
    assert.deepEqual(described, [], "tslab rejects code that notebooks import (tsc -p . may accept it: tslab is not strict)");
  } finally {
    converter.close();
    process.chdir(cwd);
  }
});

// ---------------------------------------------------------------------------------------------
// The notebooks themselves, through the real tslab kernel (tools/jupyter/run_notebooks.py).

const JUPYTER = path.join(ROOT, ".venv", "bin", "jupyter");
const noJupyter = fs.existsSync(JUPYTER) ? false : `${JUPYTER} is missing: run \`make setup\` to execute the notebooks`;

interface Output {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
}
interface Cell {
  cell_type: string;
  source: string | string[];
  outputs?: Output[];
}
const joined = (s: string | string[] | undefined): string => (Array.isArray(s) ? s.join("") : s ?? "");

function outputsOf(file: string): Output[] {
  const nb = JSON.parse(fs.readFileSync(file, "utf8")) as { cells: Cell[] };
  return nb.cells.flatMap((c) => c.outputs ?? []);
}

function outputText(o: Output): string {
  return o.output_type === "stream" ? joined(o.text) : joined(o.data?.["text/plain"] as string | string[] | undefined) + joined(o.data?.["text/html"] as string | string[] | undefined);
}

/** Checks every notebook-wide promise: no error, no stderr, no TF.js banner, plotly.js inlined once, header says the data. */
function checkCommon(file: string): Output[] {
  const outputs = outputsOf(file);
  const name = path.basename(file);
  assert.deepEqual(outputs.filter((o) => o.output_type === "error"), [], `${name}: error outputs`);
  assert.deepEqual(outputs.filter((o) => o.output_type === "stream" && o.name === "stderr").map(outputText), [], `${name}: stderr output`);
  for (const o of outputs) assert.doesNotMatch(outputText(o).slice(0, 100_000), /Hi, looks like you are running TensorFlow\.js|tfjs-node for more details/, `${name}: TF.js banner in an output`);
  const libraries = outputs.filter((o) => joined(o.data?.["text/html"] as string | undefined).includes("if (!window.Plotly) {"));
  assert.equal(libraries.length, 1, `${name}: plotly.js inlined once`);
  const header = outputs.find((o) => o.metadata?.bias_init !== undefined);
  assert.ok(header, `${name}: header output with dataset metadata`);
  const info = header.metadata?.bias_init as { dataset: string; preset: string };
  assert.equal(info.preset, "smoke");
  assert.ok(info.dataset === "synthetic" || info.dataset === "cifar10");
  if (info.dataset === "synthetic") assert.match(outputText(header), /DATA: SYNTHETIC stand-in, NOT CIFAR-10/);
  return outputs;
}

/** Figure outputs: the Plotly JSON and the HTML+script in one bundle. */
const figuresOf = (outputs: Output[]): Output[] =>
  outputs.filter((o) => o.data?.["application/vnd.plotly.v1+json"] !== undefined && o.data?.["text/html"] !== undefined);

describe("notebooks through the tslab kernel (BIAS_INIT_PRESET=smoke)", { skip: noJupyter }, () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "bias-init-notebooks-"));
  const results = path.join(work, "results");
  const reports = path.join(work, "reports");
  const data = path.join(work, "data");
  const out = path.join(work, "executed");
  // The failing cell, its stderr and error are in the assertion message; nothing else is kept.
  after(() => fs.rmSync(work, { recursive: true, force: true }));
  const env = { ...process.env, BIAS_INIT_PRESET: "smoke", BIAS_INIT_RESULTS: results, BIAS_INIT_REPORTS: reports, BIAS_INIT_DATA: data, BIAS_INIT_BACKEND: process.env.BIAS_INIT_BACKEND ?? "js" };

  function execute(...notebooks: string[]): void {
    const r = spawnSync(PYTHON, [path.join(ROOT, "tools/jupyter/run_notebooks.py"), "--no-html", "--out", out, ...notebooks.map((n) => path.join(ROOT, "notebooks", n))],
      { cwd: ROOT, env, encoding: "utf8", timeout: 240_000 });
    assert.equal(r.status, 0, `run_notebooks.py failed (status ${r.status}, signal ${r.signal}):\n${r.stdout}\n${r.stderr}`);
  }

  type KernelReply = { language_info: unknown; history: unknown; outputs: Array<{ type: string; content: { name?: string; text?: string } }>; starts: number; busy_port?: number };
  /** test/helpers/kernel_protocol.py: the kernel started as Jupyter starts it; its stderr (the server log) is in LOG. */
  function kernelProtocol(log: string, code: string, flags: string[] = [], extraEnv: Record<string, string> = {}): KernelReply {
    const r = spawnSync(PYTHON, [path.join(ROOT, "test/helpers/kernel_protocol.py"), ...flags, log, code],
      { cwd: ROOT, env: { ...env, ...extraEnv, JUPYTER_PATH: path.join(ROOT, "tools", "jupyter") }, encoding: "utf8", timeout: 240_000 });
    const kernelLog = fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "(no log written)";
    assert.equal(r.status, 0, `kernel_protocol.py failed (status ${r.status}, signal ${r.signal}):\n${r.stdout}\n${r.stderr}\nthe kernel's stderr:\n${kernelLog}`);
    return JSON.parse(r.stdout.trim().split("\n").pop() as string) as KernelReply;
  }

  test("the kernel: committed language_info, an answer to history requests, no TensorFlow start-up lines in the server log", () => {
    const log = path.join(work, "kernel-stderr.log");
    // Loading the native engine makes TensorFlow 2.21 log through absl before absl::InitializeLog(),
    // straight to file descriptor 2, whatever TF_CPP_MIN_LOG_LEVEL says; launch.sh filters those lines.
    const native = fs.existsSync(path.join(ROOT, ".native", "tfjs-node", "package.json"));
    const code = native ? 'import { initBackend } from "./src/engine/backend";\nconsole.log((await initBackend("native")).kind);' : "";
    // TensorFlow turns oneDNN on by itself only on CPUs with AVX-512 (and logs it then); forced on
    // here, so that the start-up lines come on any CPU, in the kernel and in the reference alike.
    const reply = kernelProtocol(log, code, [], { TF_ENABLE_ONEDNN_OPTS: "1" });
    // tslab alone says version "3.7.2" with a codemirror_mode; JupyterLab saves whatever this says.
    assert.deepEqual(reply.language_info, { name: "typescript", file_extension: ".ts", mimetype: "text/typescript", version: tslabVersions.typescript });
    assert.deepEqual(reply.history, { status: "ok", history: [] });
    const stderr = fs.readFileSync(log, "utf8");
    assert.doesNotMatch(stderr, /unknown msg_type/, "tslab's warning for the history request");
    if (native) {
      const streams = reply.outputs.filter((o) => o.type === "stream");
      assert.deepEqual(streams.map((o) => [o.content.name, o.content.text]), [["stdout", "native-cpu\n"]]);
      // The reference: the same engine loaded by a plain Node process does print them.
      const plain = spawnSync(process.execPath, ["--import", "tsx", "-e", 'require("./src/engine/backend").initBackend("native").then((i) => console.log(i.kind))'],
        { cwd: ROOT, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: "2", TF_ENABLE_ONEDNN_OPTS: "1" }, encoding: "utf8", timeout: 120_000 });
      assert.match(plain.stderr, /absl::InitializeLog\(\)[\s\S]*oneDNN custom operations are on/, "TensorFlow no longer prints its start-up lines: the filter in launch.sh can go");
      assert.doesNotMatch(stderr, /absl::InitializeLog|oneDNN custom operations/, `the server log got TensorFlow's start-up lines:\n${stderr}`);
    }
  });

  test("a kernel that finds one of its ports taken exits at once naming it, and the headless client starts a new one on new ports", () => {
    // Jupyter picks free ports, then starts the kernel; another process can take one in between.
    // tslab alone logs the failed bind and stays alive without answering, until the client's timeout.
    const log = path.join(work, "kernel-busy-port.log");
    const reply = kernelProtocol(log, "", ["--busy-port"]);
    assert.equal(reply.starts, 2, "the first start (its shell port held by a listening socket) died; the second, on new ports, answered");
    assert.deepEqual(reply.history, { status: "ok", history: [] });
    const kernelLog = fs.readFileSync(log, "utf8");
    assert.match(kernelLog, new RegExp(`^bias-init kernel: cannot bind tcp://127\\.0\\.0\\.1:${reply.busy_port} \\(Address already in use\\); exiting`, "m"), kernelLog);
    assert.doesNotMatch(kernelLog, /UnhandledPromiseRejection/, kernelLog);
  });

  test("00_walkthrough runs top to bottom: sample images, figures, the demo's progress and step losses", () => {
    execute("00_walkthrough.ipynb");
    const outputs = checkCommon(path.join(out, "00_walkthrough.ipynb"));
    const figures = figuresOf(outputs);
    // Class balance and the demo's step-loss curve.
    assert.equal(figures.length, 2, `figures: ${figures.map(outputText).join(" | ")}`);
    assert.ok(outputs.some((o) => joined(o.data?.["text/html"] as string | undefined).includes("data:image/png;base64,")), "sample images");
    assert.ok(outputs.some((o) => /^done in .*: 2 of 2 unit\(s\) complete in /.test(outputText(o))), "the demo's progress display ends with its summary line");
    const text = outputs.map(outputText).join("\n");
    assert.match(text, /test BCE \(loss\) and ROC-AUC in eval mode \(running BatchNorm statistics\), and in train mode/, "eval and train mode side by side");
    assert.match(text, /roc_auc_train_mode/);
    assert.match(text, /before any step \(means over trials\): the test logits in eval mode/, "the logit spread table");
    assert.match(text, /positive rate arm \(bias -2\.\d{3}\):\*\* in eval mode the test logits have mean -2\.\d{3} and SD 0\.000/, "every test logit is the bias");
    assert.match(text, /The bias sets where the logits are centred, not how far they spread\./);
    assert.match(text, /the hockey stick, measured\. Steps to catch up: optimizer steps before the vanilla arm's smoothed training loss comes within 5%/);
    const setup = outputs.map(outputText).filter((t) => t.startsWith("setup"));
    assert.equal(setup.length, 1, `one setup status output (updated in place, nbclient keeps its last state): ${setup.join(" | ")}`);
    assert.match(setup[0], /^setup done in \d+\.\d s \(loading engine: \d+\.\d s; (generating the synthetic stand-in \([\d,]+ images\)|loading the synthetic stand-in|loading CIFAR-10 from \S+): \d+\.\d s\)/);
  });

  test("04_summary renders every section from the store: known records, an unavailable half, a missing run", () => {
    // The store as 01 and 02 would leave it with the smoke preset, written directly (no training):
    // two paired scratch trials with known numbers, the ImageNet half marked unavailable.
    const config = makeConfig("smoke", mergeOverrides({ data: { dir: data } }, planOverrides("scratch", "smoke")));
    const { store, dataset } = storeFor(config, results);
    store.init({ seeded: "test/notebooks.test.ts" });
    const loss = { vanilla: [[0.70, 0.40, 0.35], [0.71, 0.42, 0.37]], positive_rate: [[0.33, 0.36, 0.34], [0.33, 0.35, 0.345]] };
    for (const arm of ["vanilla", "positive_rate"] as const) {
      for (const trial of [0, 1]) {
        const unit = { backbone: "scratch" as const, arm, trial };
        for (const epoch of [0, 1, 2]) {
          // Step losses of the first epoch: vanilla from 0.7 down to the positive-rate arm's 0.33 by step 6 (its EMA, span 10, by step 19).
          const steps = epoch !== 1 ? null : Array.from({ length: 30 }, (_, i) => ({ backbone: "scratch" as const, arm, trial, epoch: 1, step: i + 1,
            loss: arm === "vanilla" ? Math.max(0.33, 0.7 - 0.075 * i) + 0.001 * trial : 0.33 }));
          store.appendEpoch(unit, {
            backbone: "scratch", arm, trial, epoch, loss: loss[arm][trial][epoch], roc_auc: 0.5 + 0.1 * epoch + 0.01 * trial,
            output_bias_value: arm === "vanilla" ? 0.01 : -2.2, train_loss: epoch === 0 ? null : 0.3, wall_s: 1, images_per_s: epoch === 0 ? null : 50,
            seed: trial, dataset, backend: "js", ece: 0.05 + 0.01 * trial, mean_prob: arm === "vanilla" ? 0.4 - 0.1 * epoch : 0.1, test_positive_rate: 0.1,
          }, null, steps);
        }
        store.setStatus(unit, "done");
        store.setStatus({ backbone: "imagenet", arm, trial }, "unavailable", "no ImageNet weights for the tiny model (test)");
      }
    }
    const exported = path.join(reports, "learning_curves_scratch.png");
    execute("04_summary.ipynb");
    const outputs = checkCommon(path.join(out, "04_summary.ipynb"));
    const figures = figuresOf(outputs);
    assert.equal(figures.length, 3, `scratch learning curves, paired difference and calibration: ${figures.map(outputText).join(" | ")}`);
    assert.ok(figures.some((f) => /Calibration by bias initialization: From scratch/.test(JSON.stringify(f.data?.["application/vnd.plotly.v1+json"]))), "the calibration figure");
    const text = outputs.map(outputText).join("\n");
    assert.match(text, /\*\*scratch\*\* \(`[^`]+`\): 4 of 4 unit\(s\) complete\./);
    assert.match(text, /\*\*imagenet\*\* \(`[^`]+`\): 0 of 4 unit\(s\) complete, 4 not runnable\./);
    // Epoch 2 differences -0.01 and -0.025: mean -0.0175, and with n = 2 (t = 12.71) the CI spans 0.
    assert.match(text, /From scratch \(2 epochs\), after epoch 2:\*\* no test-BCE difference the trials can resolve \(the CI includes 0\): positive rate - vanilla = -0\.0175 \(95% CI /);
    assert.match(text, /\*\*ImageNet weights \(2 epochs\): not run\.\*\* No ImageNet weights for the tiny model \(test\)/);
    assert.match(text, /From scratch, convergence run \(4 epochs\): no results in the store yet/);
    assert.match(text, /From scratch \(SYNTHETIC data\): the hockey stick, measured\..* 2 of 2 pairs caught up within epoch 1/, "the hockey-stick table");
    assert.match(text, /loss per arm and epoch, mean and 95% CI: Student t over trials, loss on the log scale, mapped back/);
    assert.match(text, /Holm-corrected/);
    assert.ok(fs.existsSync(exported), `${exported}: the reference figure was not exported`);
    // The sweep section, before notebook 05 has run: what its stores hold and where to fill them.
    assert.match(text, /Target rate 0\.1: \*\*sweep\*\* \(`[^`]+`\): 0 of 4 unit\(s\) complete; run `05_imbalance_sweep` to train the other 4\./);
    assert.match(text, /No sweep results in the store yet \(rates 0\.1, 0\.02\): run `05_imbalance_sweep`/);
  });

  // The sweep's stores as notebook 05 leaves them with the smoke preset (rates 0.1 and 0.02, two
  // paired trials, epochs 0-2), written directly with known numbers: the notebook trains nothing.
  // Its real training is test/sweep.test.ts's acceptance run.
  const sweepHtml = path.join(reports, "05_imbalance_sweep.html");
  test("05_imbalance_sweep through `make report`'s script: the data per rate, five figures, the hockey-stick table, conclusions from the numbers", () => {
    const base = makeConfig("smoke", mergeOverrides({ data: { dir: data } }, planOverrides("sweep", "smoke")));
    const counts = { 0.1: { train: [1280, 128], test: [1200, 120] }, 0.02: { train: [1176, 24], test: [1102, 22] } } as const;
    for (const config of rateConfigs(base, planRates("sweep", "smoke") as number[])) {
      const rate = config.data.targetPositiveRate as 0.1 | 0.02;
      const c = counts[rate];
      const p = c.train[1] / c.train[0];
      const { store, dataset } = storeFor(config, results);
      store.init({ seeded: "test/notebooks.test.ts", positiveRate: p, testPositiveRate: c.test[1] / c.test[0],
        counts: { train: { images: c.train[0], positives: c.train[1] }, test: { images: c.test[0], positives: c.test[1] } } });
      const h = entropyNats(p);
      const steps = Math.ceil(c.train[0] / config.trainBatch);
      const loss = { vanilla: rate === 0.1 ? [0.69, 0.40, 0.35] : [0.69, 0.15, 0.12], positive_rate: rate === 0.1 ? [0.3251, 0.36, 0.33] : [0.0979, 0.10, 0.09] };
      for (const arm of ["vanilla", "positive_rate"] as const) {
        for (const trial of [0, 1]) {
          const unit = { backbone: "scratch" as const, arm, trial };
          for (const epoch of [0, 1, 2]) {
            const stepRecords = epoch !== 1 ? null : Array.from({ length: steps }, (_, i) => ({ backbone: "scratch" as const, target_positive_rate: rate, arm, trial, epoch: 1, step: i + 1,
              loss: arm === "vanilla" ? Math.max(h, 0.69 - 0.05 * i) + 0.001 * trial : h }));
            store.appendEpoch(unit, {
              backbone: "scratch", target_positive_rate: rate, arm, trial, epoch, loss: loss[arm][epoch] + (epoch === 0 ? 0 : (arm === "vanilla" ? 0.01 : 0.005) * trial),
              roc_auc: epoch === 0 ? 0.5 : 0.7 + 0.1 * epoch + 0.01 * trial, output_bias_value: arm === "vanilla" ? 0.01 : Math.log(p / (1 - p)), train_loss: epoch === 0 ? null : 0.3,
              wall_s: 1, images_per_s: epoch === 0 ? null : 50, seed: trial, dataset, backend: "js", ece: 0.05 + 0.01 * trial, mean_prob: arm === "vanilla" ? 0.5 - 0.2 * epoch : p, test_positive_rate: c.test[1] / c.test[0],
            }, null, stepRecords);
          }
          store.setStatus(unit, "done");
        }
      }
    }
    const r = spawnSync("bash", [path.join(ROOT, "tools/jupyter/report.sh"), path.join(ROOT, "notebooks/05_imbalance_sweep.ipynb")], { cwd: ROOT, env, encoding: "utf8", timeout: 240_000 });
    assert.equal(r.status, 0, `report.sh failed (status ${r.status}):\n${r.stdout}\n${r.stderr}`);
    const outputs = checkCommon(path.join(reports, "05_imbalance_sweep.ipynb"));
    const figures = figuresOf(outputs);
    const titles = figures.map((f) => String((f.data?.["application/vnd.plotly.v1+json"] as { layout: { title: { text: string } } }).layout.title.text));
    assert.deepEqual(titles.map((t) => t.replace(/:.*/, "")), ["Test metrics by bias initialization and positive rate", "Test BCE before any step against the positive rate",
      "The hockey stick against the positive rate", "Paired difference after the last epoch (2) against the positive rate", "Calibration by bias initialization and positive rate"]);
    assert.ok(titles.every((t) => t.endsWith("From scratch, 2 trials (synthetic data)")), titles.join(" | "));
    const text = outputs.map(outputText).join("\n");
    assert.match(text, /Target rate 0\.02: \*\*sweep\*\* \(`[^`]+`\): 4 of 4 unit\(s\) complete\./);
    assert.match(text, /Each target rate's data as the store recorded it/);
    assert.match(text, /The hockey stick per rate, vanilla against each prior arm\. Steps to catch up: /);
    assert.match(text, /\*\*These numbers come from the SYNTHETIC stand-in data, not CIFAR-10\.\*\*/);
    assert.match(text, /\*\*p = 0\.0204\*\* \(target 0\.02; train 1176 images, 24 positive; test 1102 images, 22 positive\): before any step, test BCE 0\.6900 \(vanilla\), 0\.0979 \(positive rate\), against H\(p\) = 0\.0996/);
    // Epoch 2 at p = 0.1: -0.02 and -0.025, mean -0.0225; two trials cannot resolve it.
    assert.match(text, /after epoch 2, positive rate - vanilla: test BCE -0\.0225 \(95% CI -0\.\d{4} to \+0\.\d{4}, 2 paired trials\) \(no difference the trials resolve\)/);
    assert.match(text, /the vanilla arm caught up with the positive-rate arm in 2 of 2 pairs/);
    assert.match(text, /Across rates, before any step:\*\* the vanilla arm's test BCE exceeds H\(p\) by 0\.3649 at p = 0\.1000, 0\.5904 at p = 0\.0204/);
    assert.ok(fs.existsSync(sweepHtml), `${sweepHtml}: no HTML page`);
  });

  test("05_imbalance_sweep's HTML page: every figure draws its traces offline in headless Chromium", { skip: chromiumMissing() }, async () => {
    const html = fs.readFileSync(sweepHtml, "utf8");
    assert.doesNotMatch(html, /<script[^>]+src=/i, "the report loads no external script");
    const drawn = await measure(sweepHtml);
    assert.equal(drawn.length, html.split("window.Plotly.newPlot(div, fig.data").length - 1);
    assert.equal(drawn.length, 5);
    for (const d of drawn) checkDrawn(d, "05_imbalance_sweep.html");
  });
});
