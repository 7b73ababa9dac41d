// Our TypeScript EfficientNet-B1, loaded through our own .pth reader, against torchvision itself:
// tools/torchvision_reference.py (torch 2.13 CPU, torchvision 0.28 from .venv) saves a B1
// state_dict, fixed inputs and torchvision's outputs; here we read that .pth with
// src/model/torch_pth.ts, map it with src/model/pretrained.ts and compare. Also the input
// pipeline: src/data/preprocess.ts against IMAGENET1K_V2.transforms() on the same uint8 images.
// Takes ~1 minute on 2 cores (the 240x240 forward in pure JS is most of it).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { initBackend, PROJECT_ROOT } from "../src/engine/backend";
import { preprocessImages } from "../src/data/preprocess";
import { readCheckpoint } from "../src/model/torch_pth";
import { buildEfficientNet, EfficientNet } from "../src/model/efficientnet";
import { loadStateDict, StateDictMismatchError, verifyCheckpointFits } from "../src/model/pretrained";
import { makeRng, Rng } from "../src/rng";
import { maxAbsDiff } from "./helpers/tensors";

const PYTHON = path.join(PROJECT_ROOT, ".venv", "bin", "python");
const TOOL = path.join(PROJECT_ROOT, "tools", "torchvision_reference.py");
const skip = fs.existsSync(PYTHON) ? false : `needs ${PYTHON} with torch and torchvision (run \`make setup\`)`;

interface ArrayFile { file: string; shape: number[]; dtype: string }
interface Manifest {
  checkpoints: { b1: string; b0: string };
  eval_cases: Record<"240" | "32", { input: ArrayFile; logits: ArrayFile }>;
  bn_after_train_forward: {
    input: ArrayFile; logits: ArrayFile; values: ArrayFile;
    entries: Array<{ key: string; offset: number; length: number }>;
  };
  preprocess: { images_chw_uint8: ArrayFile; pil: ArrayFile; tensor: ArrayFile };
}

/**
 * Stochastic depth and dropout keep every entry when rng.next() < 1 - p (ops/layers.ts dropMask): with
 * next() always 0 every draw is "keep" (survivors scaled by 1/(1-p)), which is what the reference
 * reproduces in torch for its training-mode forward.
 */
const keepEveryDraw: Rng = { next: () => 0, int: () => 0, normal: () => 0, uint32: () => 0, shuffle: (xs) => xs };

describe("parity with torchvision 0.28", { skip }, () => {
  let dir = "";
  let manifest: Manifest;
  let b1: EfficientNet;
  const floats = (a: ArrayFile): Float32Array => {
    assert.equal(a.dtype, "float32");
    const bytes = fs.readFileSync(path.join(dir, a.file));
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  };
  const logitsOf = (input: ArrayFile, training: boolean): Float32Array => {
    const x = tf.tensor4d(floats(input), input.shape as [number, number, number, number]);
    const y = b1.forward(x, training ? { training, updateBatchNorm: true, rng: keepEveryDraw } : { training });
    const values = y.dataSync() as Float32Array;
    tf.dispose([x, y]);
    return values;
  };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "bias-parity-"));
    execFileSync(PYTHON, [TOOL, dir], { stdio: ["ignore", "ignore", "inherit"], timeout: 240_000 });
    manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8")) as Manifest;
    await initBackend();
    b1 = buildEfficientNet("b1", makeRng("parity"));
    loadStateDict(b1, readCheckpoint(path.join(dir, manifest.checkpoints.b1)), "b1_random.pth");
  });
  after(() => {
    b1?.dispose();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const name of ["240", "32"] as const) {
    test(`eval mode, ${name}x${name} batch: the 1000 logits match torchvision within 1e-4`, (t) => {
      const c = manifest.eval_cases[name];
      const expected = floats(c.logits);
      const diff = maxAbsDiff(logitsOf(c.input, false), expected);
      const scale = maxAbsDiff(expected, new Float32Array(expected.length));
      t.diagnostic(`max |logit| ${scale.toFixed(3)}, max abs diff ${diff.toExponential(2)}`);
      assert.ok(scale > 0.3, `logits of order 1 (max ${scale}), so the tolerance means something`);
      assert.ok(diff < 1e-4, `max abs diff ${diff}`);
    });
  }

  test("one training-mode forward: logits and every BatchNorm running_mean/var update within 1e-4", (t) => {
    const ref = manifest.bn_after_train_forward;
    const vars = b1.namedVariables();
    const stats = floats(ref.values);
    const before = new Map(ref.entries.map((e) => [e.key, Float32Array.from((vars.get(e.key) as tf.Variable).dataSync() as Float32Array)]));
    const logitDiff = maxAbsDiff(logitsOf(ref.input, true), floats(ref.logits));
    let statDiff = 0;
    let moved = 0;
    for (const e of ref.entries) {
      const now = (vars.get(e.key) as tf.Variable).dataSync() as Float32Array;
      statDiff = Math.max(statDiff, maxAbsDiff(now, stats.subarray(e.offset, e.offset + e.length)));
      moved = Math.max(moved, maxAbsDiff(now, before.get(e.key) as Float32Array));
    }
    t.diagnostic(`${ref.entries.length} running stats: max abs diff ${statDiff.toExponential(2)} (largest update ${moved.toFixed(3)}); logits ${logitDiff.toExponential(2)}`);
    assert.equal(ref.entries.length, 2 * 69, "running_mean and running_var of all 69 BatchNorms of B1");
    assert.ok(moved > 0.1, "the forward did update the statistics");
    assert.ok(statDiff < 1e-4, `running stats max abs diff ${statDiff}`);
    assert.ok(logitDiff < 1e-4, `training-mode logits max abs diff ${logitDiff}`);
  });

  test("torchvision's B0 state_dict: fits a B0, and into B1 is refused listing the 128 missing keys", () => {
    const file = path.join(dir, manifest.checkpoints.b0);
    assert.equal(verifyCheckpointFits(file, "b0").size, 360, "B0 has 360 state_dict entries (49 BN counters included)");
    const probe = "features.0.0.weight";
    const before = Float32Array.from((b1.namedVariables().get(probe) as tf.Variable).dataSync() as Float32Array);
    assert.throws(() => loadStateDict(b1, readCheckpoint(file), `checkpoint ${file}`), (e: Error) => {
      assert.ok(e instanceof StateDictMismatchError);
      assert.equal(e.problems.length, 128);
      assert.ok(e.problems.includes("missing features.7.1.block.3.1.running_var (expected [320])"), e.problems.join("\n"));
      return true;
    });
    assert.deepEqual((b1.namedVariables().get(probe) as tf.Variable).dataSync(), before, "nothing loaded");
  });

  test("preprocessing (resize 255, crop 240, normalize) equals transforms() on PIL images within 1e-3", (t) => {
    const p = manifest.preprocess;
    const images = new Uint8Array(fs.readFileSync(path.join(dir, p.images_chw_uint8.file)));
    const n = p.images_chw_uint8.shape[0];
    const x = preprocessImages(images, Array.from({ length: n }, (_, i) => i), { resize: 255, crop: 240 });
    assert.deepEqual(x.shape, p.pil.shape);
    const ours = x.dataSync() as Float32Array;
    x.dispose();
    const pil = maxAbsDiff(ours, floats(p.pil));
    const tensorPath = maxAbsDiff(ours, floats(p.tensor));
    // The reference's CIFAR10 dataset hands transforms() PIL images; torchvision's uint8-tensor
    // path rounds differently (off by one grey level, 1/255/0.224 = 0.0175, on ~20% of values).
    t.diagnostic(`vs PIL path ${pil.toExponential(2)}; vs uint8-tensor path ${tensorPath.toExponential(2)} (not the reference's path)`);
    assert.ok(pil < 1e-3, `max abs diff vs PIL path ${pil}`);
  });
});
