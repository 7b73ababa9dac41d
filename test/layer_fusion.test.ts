// Layer fusion in training (items 21, 30, 32, 35): where this project's kernels run, expand's BatchNorm +
// SiLU with the depthwise convolution, the depthwise convolution's BatchNorm + SiLU with
// squeeze-excitation and the projection, and the projection's BatchNorm with stochastic depth and the
// residual sum, are one op each whose backward pass recomputes the tensor
// between them (and hands SE's input gradient to BatchNorm's kernel as an affine). Checked here:
// each fused op against the ops it replaces (values, gradients and running statistics bit for bit); a model's loss and
// every gradient bit for bit with fusion on and off, with and without block recompute; and the
// memory it is for: at the end of the forward pass the tape holds exactly the recomputed tensors'
// bytes less, counted from the architecture. And item 34's fold of SE's gate into the projection's
// weights, against the unfolded op within float round-off (it sums in another order; torch parity
// with the fold forced on is in training_parity.test.ts). Skipped where the kernels cannot run here.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { NativeKernelBackend } from "../src/model/ops/native_backend";
import { nativeBatchNormActDepthwise, nativeDepthwiseConvPadded } from "../src/model/ops/native_conv";
import { nativeTrainingBatchNormAct } from "../src/model/ops/native_batchnorm";
import { batchNormResidual, pointwiseConv, residualAdd, setLayerFusion } from "../src/model/ops/layers";
import { batchNormActSqueezeExcitationProject, squeezeExcitation } from "../src/model/ops/squeeze_excitation";
import { foldsGateInTraining } from "../src/model/ops/se_projection_fold";
import { FoldInputScale, setFoldInputScale } from "../src/model/ops/native_eval";
import { efficientNetArchitecture } from "../src/model/architecture";
import { BinaryClassifier } from "../src/model/head";
import { setBlockRecompute } from "../src/model/efficientnet";
import { frugalVariableGrads } from "../src/train/frugal_backward";
import { makeRng } from "../src/rng";
import { seededTensor } from "./helpers/tensors";
import { loadNativeForTests } from "./helpers/native_backend";

let nb: NativeKernelBackend | null = null;
let why = "";

before(async () => {
  ({ nb, why } = await loadNativeForTests(true));
});

const randomTensor = (shape: number[], seed: number, scale = 1, shift = 0): tf.Tensor => seededTensor("layer-fusion-test", shape, seed, scale, shift);

/** Running statistics seeded from `seed` (mean) and seed + 1 (variance, >= 1), as variables. */
const runningStats = (c: number, seed: number) => ({ runningMean: tf.variable(randomTensor([c], seed), false), runningVar: tf.variable(tf.add(1, tf.abs(randomTensor([c], seed + 1))), false) });
type RunningStats = ReturnType<typeof runningStats>;
/** A BatchNorm state over `stats` with this gamma and beta (eps 1e-3, momentum 0.1). */
const bnState = (stats: RunningStats, gamma: tf.Tensor, beta: tf.Tensor) => ({ gamma, beta, ...stats, eps: 1e-3, momentum: 0.1 });

/** Both ways updated the running statistics to the same bits, and away from where they started (`seed`, as runningStats); then frees them. */
function assertSameRunningStats(ours: RunningStats, theirs: RunningStats, c: number, seed: number): void {
  assert.deepEqual(ours.runningMean.dataSync(), theirs.runningMean.dataSync());
  assert.deepEqual(ours.runningVar.dataSync(), theirs.runningVar.dataSync());
  assert.notDeepEqual(ours.runningMean.dataSync(), randomTensor([c], seed).dataSync(), "the running mean was updated");
  tf.dispose([ours.runningMean, ours.runningVar, theirs.runningMean, theirs.runningVar]);
}

/** Squeeze-excitation's parameters from four tensors. */
const seParams = (w1: tf.Tensor, b1: tf.Tensor, w2: tf.Tensor, b2: tf.Tensor) => ({ w1: w1 as tf.Tensor2D, b1: b1 as tf.Tensor1D, w2: w2 as tf.Tensor2D, b2: b2 as tf.Tensor1D });

/** The same bits: values of `fused` and `twoOps`, and their gradients with respect to every input for the same upstream gradient. */
function assertBitIdentical(what: string, fused: (...xs: tf.Tensor[]) => tf.Tensor, twoOps: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[]): void {
  const run = (f: (...xs: tf.Tensor[]) => tf.Tensor) => tf.tidy(() => {
    const y = f(...inputs);
    const dy = randomTensor(y.shape, 99);
    return [y, ...tf.grads((...xs: tf.Tensor[]) => f(...xs))(inputs, dy)].map((t) => t.dataSync().slice());
  });
  const [a, b] = [run(fused), run(twoOps)];
  assert.equal(a.length, b.length);
  a.forEach((values, i) => assert.deepEqual(values, b[i], `${what}: ${i === 0 ? "value" : `gradient ${i - 1}`} differs`));
}

test("BatchNorm + SiLU then the depthwise convolution as one op = the two ops, bit for bit: values, gradients, running statistics", (t) => {
  if (nb === null) return t.skip(why);
  const native = nb;
  // 13 channels: an 8-wide vector and a scalar tail; partial row blocks; k 3 and 5, strides 1 and 2.
  // At stride 1 the backward pass is one op (BiasInitBatchNormActDepthwiseGrad) summing by blocks of
  // 64 values that start and end inside image rows (11 and 7 columns), 5x5 windows wider than a row's edge.
  for (const [shape, k, stride, activation] of [[[2, 9, 11, 13], 3, 1, true], [[3, 8, 7, 24], 5, 2, true], [[2, 6, 6, 16], 3, 2, false],
    [[3, 10, 7, 21], 5, 1, false], [[2, 12, 12, 40], 3, 1, true]] as Array<[number[], number, number, boolean]>) {
    const c = shape[3];
    const stats = () => runningStats(c, 3);
    const [ours, theirs] = [stats(), stats()];
    const fused = (update: boolean) => (e: tf.Tensor, g: tf.Tensor, b: tf.Tensor, w: tf.Tensor) =>
      nativeBatchNormActDepthwise(native, e as tf.Tensor4D, bnState(ours, g, b), update, activation, w as tf.Tensor4D, stride, (k - 1) / 2);
    const twoOps = (update: boolean) => (e: tf.Tensor, g: tf.Tensor, b: tf.Tensor, w: tf.Tensor) =>
      nativeDepthwiseConvPadded(native, nativeTrainingBatchNormAct(native, e as tf.Tensor4D, bnState(theirs, g, b), update, activation), w as tf.Tensor4D, stride, (k - 1) / 2);
    const inputs = [randomTensor(shape, 10, 2, 1), randomTensor([c], 11), randomTensor([c], 12), randomTensor([k, k, c, 1], 13)];
    assertBitIdentical(`${JSON.stringify(shape)} k${k} s${stride} silu=${activation}`, fused(false), twoOps(false), inputs);
    const [e, g, b, w] = inputs;
    tf.dispose([fused(true)(e, g, b, w), twoOps(true)(e, g, b, w)]);
    assertSameRunningStats(ours, theirs, c, 3);
    tf.dispose(inputs);
  }
});

test("the depthwise convolution's BatchNorm (+ SiLU), squeeze-excitation and the 1x1 projection as one op = the three ops, bit for bit: values, gradients, running statistics", (t) => {
  if (nb === null) return t.skip(why);
  const native = nb;
  // 13 channels: an 8-wide vector and a scalar tail; 2 and 3 samples (the affine's rows per sample).
  for (const [shape, out, activation] of [[[2, 9, 11, 13], 6, true], [[3, 4, 4, 24], 16, true], [[3, 5, 5, 16], 8, false]] as Array<[number[], number, boolean]>) {
    const c = shape[3];
    const stats = () => runningStats(c, 5);
    const [ours, theirs] = [stats(), stats()];
    const mode = (update: boolean) => ({ training: true, updateRunningStats: update });
    const fused = (update: boolean) => (d: tf.Tensor, g: tf.Tensor, b: tf.Tensor, w1: tf.Tensor, b1: tf.Tensor, w2: tf.Tensor, b2: tf.Tensor, wp: tf.Tensor) =>
      batchNormActSqueezeExcitationProject(d as tf.Tensor4D, bnState(ours, g, b), mode(update), activation, seParams(w1, b1, w2, b2), wp as tf.Tensor2D);
    const threeOps = (update: boolean) => (d: tf.Tensor, g: tf.Tensor, b: tf.Tensor, w1: tf.Tensor, b1: tf.Tensor, w2: tf.Tensor, b2: tf.Tensor, wp: tf.Tensor) =>
      pointwiseConv(squeezeExcitation(nativeTrainingBatchNormAct(native, d as tf.Tensor4D, bnState(theirs, g, b), update, activation), seParams(w1, b1, w2, b2)), wp as tf.Tensor2D);
    const inputs = [randomTensor(shape, 20, 2, 1), randomTensor([c], 26), randomTensor([c], 27),
      randomTensor([c, 4], 21), randomTensor([4], 22), randomTensor([4, c], 23), randomTensor([c], 24), randomTensor([c, out], 25)];
    assertBitIdentical(`${JSON.stringify(shape)} -> ${out} silu=${activation}`, fused(false) as (...xs: tf.Tensor[]) => tf.Tensor, threeOps(false) as (...xs: tf.Tensor[]) => tf.Tensor, inputs);
    const [d, g, b, w1, b1, w2, b2, wp] = inputs;
    tf.dispose([fused(true)(d, g, b, w1, b1, w2, b2, wp), threeOps(true)(d, g, b, w1, b1, w2, b2, wp)]);
    assertSameRunningStats(ours, theirs, c, 5);
    tf.dispose(inputs);
  }
});

test("the projection's BatchNorm, stochastic depth's row factor and the residual sum as one op = BatchNorm, Mul and AddV2, bit for bit: values, gradients, running statistics", (t) => {
  if (nb === null) return t.skip(why);
  const native = nb;
  // 13 channels (a vector and a scalar tail); a dropped sample (factor 0: dy * 0 keeps dy's sign of zero), and no factors at all.
  for (const [shape, perSample] of [[[3, 5, 7, 13], Float32Array.from([1.25, 0, 1.25])], [[2, 9, 11, 24], null], [[2, 4, 4, 16], Float32Array.from([0, 1.25])]] as Array<[number[], Float32Array | null]>) {
    const c = shape[3];
    const stats = () => runningStats(c, 7);
    const [ours, theirs] = [stats(), stats()];
    const mode = (update: boolean) => ({ training: true, updateRunningStats: update });
    const fused = (update: boolean) => (y: tf.Tensor, g: tf.Tensor, b: tf.Tensor, x: tf.Tensor) =>
      batchNormResidual(y as tf.Tensor4D, bnState(ours, g, b), mode(update), false, x as tf.Tensor4D, perSample);
    const threeOps = (update: boolean) => (y: tf.Tensor, g: tf.Tensor, b: tf.Tensor, x: tf.Tensor) =>
      residualAdd(nativeTrainingBatchNormAct(native, y as tf.Tensor4D, bnState(theirs, g, b), update, false), x as tf.Tensor4D, perSample);
    const inputs = [randomTensor(shape, 40, 2, 1), randomTensor([c], 41), randomTensor([c], 42), randomTensor(shape, 43)];
    assertBitIdentical(`${JSON.stringify(shape)} factors ${perSample === null ? "none" : Array.from(perSample).join(",")}`, fused(false), threeOps(false), inputs);
    const [y, g, b, x] = inputs;
    tf.dispose([fused(true)(y, g, b, x), threeOps(true)(y, g, b, x)]);
    assertSameRunningStats(ours, theirs, c, 7);
    tf.dispose(inputs);
  }
});

test("squeeze-excitation's gate folded into the projection's per-sample weights in training (item 34): from 30x30 positions, values and gradients within float round-off of the unfolded op's", (t) => {
  if (nb === null) return t.skip(why);
  const native = nb;
  assert.equal(foldsGateInTraining(native, 29 * 31), false, "under 900 positions: not folded");
  if (!foldsGateInTraining(native, 30 * 30)) return t.skip("oneDNN's batched product does not run by name here (native_eval.ts oneDnnKernels)");
  // 13 channels (a vector and a scalar tail), 2 samples of 30x30 (the rule folds) and 3 of 31x29 forced.
  for (const [shape, out, activation, mode] of [[[2, 30, 30, 13], 6, true, "auto"], [[3, 31, 29, 16], 8, false, "always"]] as Array<[number[], number, boolean, FoldInputScale]>) {
    const c = shape[3];
    const stats = runningStats(c, 5);
    const inputs = [randomTensor(shape, 20, 2, 1), randomTensor([c], 26), randomTensor([c], 27),
      randomTensor([c, 4], 21), randomTensor([4], 22), randomTensor([4, c], 23), randomTensor([c], 24), randomTensor([c, out], 25)];
    const run = (fold: FoldInputScale) => tf.tidy(() => {
      setFoldInputScale(fold);
      try {
        const f = (d: tf.Tensor, g: tf.Tensor, b: tf.Tensor, w1: tf.Tensor, b1: tf.Tensor, w2: tf.Tensor, b2: tf.Tensor, wp: tf.Tensor) =>
          batchNormActSqueezeExcitationProject(d as tf.Tensor4D, bnState(stats, g, b), { training: true, updateRunningStats: false }, activation, seParams(w1, b1, w2, b2), wp as tf.Tensor2D);
        const y = (f as (...xs: tf.Tensor[]) => tf.Tensor)(...inputs);
        return [y, ...tf.grads(f as (...xs: tf.Tensor[]) => tf.Tensor)(inputs, randomTensor(y.shape, 99))].map((v) => v.dataSync().slice());
      } finally {
        setFoldInputScale("auto");
      }
    });
    const [folded, plain] = [run(mode), run("never")];
    const what = `${JSON.stringify(shape)} -> ${out} (${mode})`;
    folded.forEach((v, i) => {
      const scale = Math.max(...plain[i].map(Math.abs));
      const worst = Math.max(...v.map((x, j) => Math.abs(x - plain[i][j])));
      assert.ok(scale > 0 && worst <= 1e-5 * scale, `${what}: ${i === 0 ? "value" : `gradient ${i - 1}`} differs by ${worst} (largest |value| ${scale})`);
    });
    assert.ok(folded.some((v, i) => v.some((x, j) => x !== plain[i][j])), `${what}: the same bits as unfolded: did the fold run?`);
    tf.dispose([stats.runningMean, stats.runningVar, ...inputs]);
  }
});

/** One training forward + backward of B0 at 32x32 (batch 3): the loss, every gradient, and the bytes of live tensors when the forward pass ends. */
function trainingStep(fusion: boolean, recompute: "never" | "always"): { loss: tf.TypedArray; grads: Map<string, tf.TypedArray>; forwardBytes: number } {
  setLayerFusion(fusion ? "auto" : "off");
  setBlockRecompute(recompute);
  try {
    const net = new BinaryClassifier("b0", makeRng(0, "layer-fusion-model"));
    const x = randomTensor([3, 32, 32, 3], 30) as tf.Tensor4D;
    const y = tf.tensor1d([1, 0, 0]);
    const rng = makeRng(0, "layer-fusion-masks");
    let forwardBytes = 0;
    const { value, grads } = frugalVariableGrads(() => {
      const loss = tf.losses.sigmoidCrossEntropy(y, net.forward(x, { training: true, updateBatchNorm: false, rng })) as tf.Scalar;
      forwardBytes = tf.memory().numBytes;
      return loss;
    }, net.trainableVariables());
    const out = { loss: value.dataSync().slice(), grads: new Map(Object.entries(grads).map(([k, g]) => [k, g.dataSync().slice()])), forwardBytes };
    tf.dispose([value, ...Object.values(grads), x, y]);
    net.dispose();
    return out;
  } finally {
    setLayerFusion("auto");
    setBlockRecompute("auto");
  }
}

/**
 * The bytes fusion does not keep for B0's backward pass at 32x32 batch 3: each expanded block's
 * depthwise input, each block's SE output, and each residual block's stochastic-depth factors as a
 * tensor (the fused residual op keeps them in JavaScript).
 */
function recomputedBytes(batch: number, size: number): number {
  const out = (h: number, k: number, s: number) => Math.floor((h + 2 * ((k - 1) / 2) - k) / s) + 1;
  let h = out(size, 3, 2);
  let values = 0;
  for (const b of efficientNetArchitecture("b0").stages.flat()) {
    const e = b.depthwise.inChannels;
    if (b.expand !== null) values += batch * h * h * e;
    h = out(h, b.kernel, b.stride);
    values += batch * h * h * e;
    if (b.residual && b.stochasticDepthProb > 0) values += batch;
  }
  return 4 * values;
}

test("a model trains to the same loss and gradients, bit for bit, with layer fusion and without (block recompute on and off), and fusion keeps exactly the recomputed tensors' bytes less", (t) => {
  if (nb === null) return t.skip(why);
  const plain = trainingStep(false, "never");
  for (const recompute of ["never", "always"] as const) {
    const fused = trainingStep(true, recompute);
    assert.deepEqual(fused.loss, plain.loss, `loss (recompute ${recompute})`);
    assert.equal(fused.grads.size, plain.grads.size);
    for (const [name, g] of plain.grads) assert.deepEqual(fused.grads.get(name), g, `gradient of ${name} (recompute ${recompute})`);
  }
  const fused = trainingStep(true, "never");
  assert.equal(plain.forwardBytes - fused.forwardBytes, recomputedBytes(3, 32));
});
