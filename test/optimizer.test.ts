// The grouped momentum optimizer (src/train/optimizer.ts) against PyTorch's SGD(momentum=0.9): by
// hand in float64 and, when .venv has torch, torch.optim.SGD itself, over 3 steps on parameters of
// several shapes (so concatenated groups, a group of one and groups along different axes all run);
// its state saved and restored by state_dict key with shape checks.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { GroupedMomentumSgd, NamedParameter, OptimizerStateError } from "../src/train/optimizer";
import { initBackend, PROJECT_ROOT } from "../src/engine/backend";
import { customOpsActive, overrideCustomOps } from "../src/engine/custom_ops";
import { nativeCpuOps } from "../src/model/ops/native_backend";
import { makeRng } from "../src/rng";

const PYTHON = path.join(PROJECT_ROOT, ".venv", "bin", "python");
const LR = 0.1;
const MOMENTUM = 0.9;
const STEPS = 3;

/** Key -> shape: two rank-1 (one group), two 1x1 HWIO with the same output width (one group), a depthwise kernel alone, two [in, 2]. */
const SHAPES: Record<string, number[]> = {
  "a.bias": [3], "b.weight": [5], "c.weight": [1, 1, 4, 6], "d.weight": [1, 1, 2, 6], "e.weight": [3, 3, 5, 1], "f.weight": [7, 2], "g.weight": [4, 2],
};
before(async () => {
  await initBackend();
});

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function randomValues(seed: string, n: number): number[] {
  const rng = makeRng(0, seed);
  return Array.from({ length: n }, () => Math.fround(rng.normal()));
}

/** Initial values and the gradients of each step, per key (float32-representable). */
const INITIAL = new Map(Object.entries(SHAPES).map(([k, s]) => [k, randomValues(`init ${k}`, size(s))]));
const GRADS = Array.from({ length: STEPS }, (_, step) => new Map(Object.entries(SHAPES).map(([k, s]) => [k, randomValues(`grad ${step} ${k}`, size(s))])));

function makeParams(): NamedParameter[] {
  return Object.entries(SHAPES).map(([name, shape]) => ({ name, variable: tf.variable(tf.tensor(INITIAL.get(name) as number[], shape), true) }));
}

function step(opt: GroupedMomentumSgd, params: NamedParameter[], s: number): void {
  const grads = params.map((p) => ({ name: p.variable.name, tensor: tf.tensor((GRADS[s].get(p.name) as number[]), p.variable.shape) }));
  opt.applyGradients(grads);
  tf.dispose(grads.map((g) => g.tensor));
}

/** PyTorch's rule in float64: buf = g on the first step, then buf = m * buf + g; p -= lr * buf. */
function byHand(steps: number): { params: Map<string, number[]>; buffers: Map<string, number[]> } {
  const params = new Map([...INITIAL].map(([k, v]) => [k, [...v]]));
  const buffers = new Map<string, number[]>();
  for (let s = 0; s < steps; s++) {
    for (const [k, p] of params) {
      const g = GRADS[s].get(k) as number[];
      const buf = buffers.get(k)?.map((b, i) => MOMENTUM * b + g[i]) ?? [...g];
      buffers.set(k, buf);
      params.set(k, p.map((v, i) => v - LR * buf[i]));
    }
  }
  return { params, buffers };
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, tol = 1e-6): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol * (1 + Math.abs(expected[i])), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

test("3 steps equal PyTorch's SGD momentum by hand, for every parameter and momentum buffer; state is keyed and shaped like the parameters", () => {
  const params = makeParams();
  const opt = new GroupedMomentumSgd(LR, MOMENTUM, params);
  assert.equal(opt.groupCount, 4, "rank-1 group, two 1x1 kernels, the depthwise kernel alone, the two [*, 2] weights");
  assert.deepEqual(opt.state(), [], "no state before the first step, as in PyTorch");
  for (let s = 0; s < STEPS; s++) step(opt, params, s);
  const expected = byHand(STEPS);
  for (const p of params) assertClose(p.variable.dataSync(), expected.params.get(p.name) as number[], p.name);
  const state = opt.state();
  assert.deepEqual(state.map((e) => e.name).sort(), Object.keys(SHAPES).sort());
  for (const e of state) {
    assert.deepEqual(e.tensor.shape, SHAPES[e.name], `${e.name}: buffer shape`);
    assertClose(e.tensor.dataSync(), expected.buffers.get(e.name) as number[], `${e.name} buffer`);
  }
  tf.dispose(state.map((e) => e.tensor));
  opt.dispose();
  tf.dispose(params.map((p) => p.variable));
});

test("torch.optim.SGD(momentum=0.9) itself gives the same parameters after 3 steps", { skip: fs.existsSync(PYTHON) ? false : `needs ${PYTHON} with torch (make setup)` }, () => {
  const script = [
    "import json, sys, torch",
    "d = json.load(sys.stdin)",
    "ps = {k: torch.tensor(v, dtype=torch.float32) for k, v in d['init'].items()}",
    "opt = torch.optim.SGD(list(ps.values()), lr=d['lr'], momentum=d['m'])",
    "for grads in d['grads']:",
    "    for k, p in ps.items(): p.grad = torch.tensor(grads[k], dtype=torch.float32)",
    "    opt.step()",
    "print(json.dumps({k: p.tolist() for k, p in ps.items()}))",
  ].join("\n");
  const input = JSON.stringify({ init: Object.fromEntries(INITIAL), grads: GRADS.map((g) => Object.fromEntries(g)), lr: LR, m: MOMENTUM });
  const torchParams = JSON.parse(execFileSync(PYTHON, ["-c", script], { input, encoding: "utf8", timeout: 120_000 })) as Record<string, number[]>;
  const params = makeParams();
  const opt = new GroupedMomentumSgd(LR, MOMENTUM, params);
  for (let s = 0; s < STEPS; s++) step(opt, params, s);
  for (const p of params) assertClose(p.variable.dataSync(), torchParams[p.name], `${p.name} vs torch`);
  opt.dispose();
  tf.dispose(params.map((p) => p.variable));
});

test("restored state continues exactly; restore checks keys and shapes, all or nothing, and reads TF.js MomentumOptimizer's names", () => {
  const params = makeParams();
  const opt = new GroupedMomentumSgd(LR, MOMENTUM, params);
  step(opt, params, 0);
  step(opt, params, 1);
  const saved = opt.state();
  // A second optimizer over copies of the parameters, restored from the saved state.
  const copies = params.map((p) => ({ name: p.name, variable: tf.variable(p.variable.clone(), true) }));
  const resumed = new GroupedMomentumSgd(LR, MOMENTUM, copies);
  resumed.restore(saved);
  step(opt, params, 2);
  step(resumed, copies, 2);
  params.forEach((p, i) => assert.deepEqual(copies[i].variable.dataSync(), p.variable.dataSync(), `${p.name}: resumed == uninterrupted`));

  const fresh = new GroupedMomentumSgd(LR, MOMENTUM, copies);
  const mismatch = (state: typeof saved, pattern: RegExp) =>
    assert.throws(() => fresh.restore(state), (e: unknown) => e instanceof OptimizerStateError && pattern.test(e.message));
  const wrongShape = saved.map((e) => (e.name === "c.weight" ? { name: e.name, tensor: tf.zeros([1, 1, 6, 4]) } : e));
  mismatch(wrongShape, /momentum buffer of "c\.weight" is float32 \[1, 1, 6, 4\], the parameter float32 \[1, 1, 4, 6\]/);
  mismatch(saved.slice(1), /no momentum buffer for/);
  const stray = { name: "z.weight", tensor: tf.zeros([1]) };
  mismatch([...saved, stray], /"z\.weight" is not a parameter/);
  assert.deepEqual(fresh.state(), [], "a failed restore leaves the optimizer as it was");
  // TF.js MomentumOptimizer's checkpoint names ("iter", "<variable>/momentum", with a namespace).
  const iter = { name: "iter", tensor: tf.scalar(2) };
  fresh.restore([iter, ...saved.map((e) => ({ name: `m1/${e.name}/momentum`, tensor: e.tensor }))]);
  const back = fresh.state();
  for (const e of back) assert.deepEqual(e.tensor.dataSync(), (saved.find((s) => s.name === e.name) as (typeof saved)[number]).tensor.dataSync());
  tf.dispose([...saved, ...back, stray, iter].map((e) => e.tensor));
  tf.dispose(wrongShape.filter((e) => e.name === "c.weight").map((e) => e.tensor));
  [opt, resumed, fresh].forEach((o) => o.dispose());
  tf.dispose([...params, ...copies].map((p) => p.variable));
});

test("with this project's kernels (native CPU engine) one op per group gives the same bits as TensorFlow's ops", (t) => {
  if (nativeCpuOps() === null || !customOpsActive()) return t.skip("needs the native CPU engine with this project's kernels (`make native`)");
  // Groups along axis 2 with 9 runs each (3x3 kernels: the buffer interleaves the members), a group
  // over 16,384 values (cut into units for two threads), odd lengths for the vector tails, a scalar.
  const shapes: Record<string, number[]> = { "dw.a": [3, 3, 37, 1], "dw.b": [3, 3, 11, 1], "pw.a": [1, 1, 300, 70], "pw.b": [1, 1, 5, 70], "v.a": [13], "v.b": [1001], "s": [] };
  const run = (custom: boolean): Float32Array[] => {
    overrideCustomOps(custom);
    try {
      const params = Object.entries(shapes).map(([name, shape], i) => ({ name, variable: tf.variable(tf.tensor(randomValues(`bits ${name}`, size(shape)), shape), true, `bits${custom}${i}`) }));
      const opt = new GroupedMomentumSgd(LR, MOMENTUM, params);
      for (let s = 0; s < STEPS; s++) {
        const grads = params.map((p) => ({ name: p.variable.name, tensor: tf.tensor(randomValues(`bits grad ${s} ${p.name}`, size(p.variable.shape)), p.variable.shape) }));
        opt.applyGradients(grads);
        tf.dispose(grads.map((g) => g.tensor));
      }
      const state = opt.state();
      const out = [...params.map((p) => p.variable.dataSync() as Float32Array), ...state.map((e) => e.tensor.dataSync() as Float32Array)];
      tf.dispose(state.map((e) => e.tensor));
      opt.dispose();
      tf.dispose(params.map((p) => p.variable));
      return out;
    } finally {
      overrideCustomOps(null);
    }
  };
  const [ours, theirs] = [run(true), run(false)];
  assert.equal(ours.length, theirs.length);
  ours.forEach((a, i) => assert.deepEqual(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(theirs[i].buffer, theirs[i].byteOffset, theirs[i].byteLength), `tensor ${i} differs`));
});
