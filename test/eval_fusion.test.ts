// Evaluation's depthwise stage as one op on this project's kernels (src/model/ops/native_eval_stage.ts
// nativeDepthwiseSilu, tools/native/ops/depthwise_eval.cc): the op against TF.js's own ops for the
// same math (SiLU as x * sigmoid(x), the zero-padded depthwise convolution, the shift, SiLU, the
// mean over H and W), the same with the expansion inside (nativeExpandDepthwiseSilu), and the whole backbone in evaluation with the stage fused against each layer
// its own op (layers.ts setLayerFusion "off"), which must run the op once per MBConv block.
// torchvision's own logits are checked with the stage fused in test/parity.test.ts. Skipped where no
// native backend with this project's kernels is built (`make native`).
import { before, test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { NativeKernelBackend } from "../src/model/ops/native_backend";
import { EvalFolds } from "../src/model/ops/native_eval";
import { EXPAND_FUSION_MAX_WEIGHTS, nativeDepthwiseSilu, nativeExpandDepthwiseSilu, setExpandFusion } from "../src/model/ops/native_eval_stage";
import { setLayerFusion } from "../src/model/ops/layers";
import { buildEfficientNet } from "../src/model/efficientnet";
import { makeRng } from "../src/rng";
import { relDiff, seededTensor } from "./helpers/tensors";
import { loadNativeForTests } from "./helpers/native_backend";

let nb: NativeKernelBackend | null = null;
let why = "";

before(async () => {
  ({ nb, why } = await loadNativeForTests(true));
});

const seeded = (shape: number[], seed: number, scale = 1): tf.Tensor => seededTensor("eval-fusion-test", shape, seed, scale);

const siluRef = (t: tf.Tensor) => tf.mul(t, tf.sigmoid(t));

test("the fused depthwise stage = TF.js's SiLU, zero-padded depthwise convolution, shift, SiLU and spatial mean (k 1, 3, 5, 7; strides 1, 2; input SiLU on and off)", (t) => {
  if (nb === null) return t.skip(why);
  const native = nb;
  // 13 channels: a vector and a scalar tail; 24: three 8-wide vectors (one 16 + one 8 with AVX-512);
  // 9x11 and 8x7 rows: outputs taken 4 at a time and singly; 2x3: windows wider than the input.
  const inputs: Array<[number[], number]> = [[[2, 9, 11, 13], 10], [[3, 8, 7, 24], 20], [[2, 2, 3, 16], 30]];
  let checked = 0;
  for (const [shape, seed] of inputs) {
    for (const k of [1, 3, 5, 7]) {
      for (const stride of [1, 2]) {
        for (const inputSilu of [true, false]) {
          tf.tidy(() => {
            const x = seeded(shape, seed, 2) as tf.Tensor4D;
            const w = seeded([k, k, shape[3], 1], seed + k) as tf.Tensor4D;
            const shift = seeded([shape[3]], seed + 10 + k) as tf.Tensor1D;
            const p = (k - 1) / 2;
            const input = inputSilu ? siluRef(x) : x;
            const conv = tf.depthwiseConv2d(tf.pad(input as tf.Tensor4D, [[0, 0], [p, p], [p, p], [0, 0]]), w, stride as 1 | 2, "valid");
            const yRef = siluRef(tf.add(conv, shift));
            const { y, pooled } = nativeDepthwiseSilu(native, x, w, shift, stride, inputSilu);
            const label = `${JSON.stringify(shape)} k${k} s${stride} input SiLU ${inputSilu}`;
            assert.deepEqual(y.shape, yRef.shape, label);
            assert.ok(relDiff(y, yRef) < 1e-5, `${label}: y differs by ${relDiff(y, yRef)} of its scale`);
            const pooledRef = tf.mean(yRef, [1, 2]);
            assert.deepEqual(pooled.shape, [shape[0], shape[3]], label);
            assert.ok(relDiff(pooled, pooledRef) < 1e-5, `${label}: the mean differs by ${relDiff(pooled, pooledRef)} of its scale`);
          });
          checked++;
        }
      }
    }
  }
  assert.equal(checked, 48);
});

test("the expansion inside the depthwise op = TF.js's 1x1 convolution, shift and SiLU before the same stage, and the two-op path (k 3, 5; strides 1, 2; channel and row tails)", (t) => {
  if (nb === null) return t.skip(why);
  const native = nb;
  // [x shape, expanded channels, seed]: 13 expanded channels, a vector and a scalar tail; 40: vectors
  // of 16 and 8; rows of 11, 7 and 13 positions: 6 at a time, then 5, 1 and 1 left. Those expand
  // row by row; 9 and 10 images of 5x5 and 1x1 expand whole images, several at a time (the last
  // group short) with two threads or more.
  const cases: Array<[number[], number, number]> = [[[2, 9, 11, 5], 13, 10], [[3, 8, 7, 24], 40, 20], [[1, 13, 13, 16], 96, 30], [[9, 5, 5, 8], 24, 40],
    [[10, 1, 1, 16], 48, 50]];
  let checked = 0;
  for (const [shape, expanded, seed] of cases) {
    const [n, h, w, cin] = shape;
    for (const k of [3, 5]) {
      for (const stride of [1, 2]) {
        tf.tidy(() => {
          const x = seeded(shape, seed, 2) as tf.Tensor4D;
          const we = seeded([cin, expanded], seed + 1, 1 / Math.sqrt(cin)) as tf.Tensor2D;
          const be = seeded([expanded], seed + 2) as tf.Tensor1D;
          const wd = seeded([k, k, expanded, 1], seed + k) as tf.Tensor4D;
          const shift = seeded([expanded], seed + 10 + k) as tf.Tensor1D;
          const p = (k - 1) / 2;
          const e = tf.reshape(tf.add(tf.matMul(tf.reshape(x, [n * h * w, cin]) as tf.Tensor2D, we), be), [n, h, w, expanded]) as tf.Tensor4D;
          const conv = tf.depthwiseConv2d(tf.pad(siluRef(e) as tf.Tensor4D, [[0, 0], [p, p], [p, p], [0, 0]]), wd, stride as 1 | 2, "valid");
          const yRef = siluRef(tf.add(conv, shift));
          const { y, pooled } = nativeExpandDepthwiseSilu(native, x, { weight: we, filter: tf.reshape(we, [1, 1, cin, expanded]) as tf.Tensor4D, shift: be }, wd, shift, stride);
          const label = `${JSON.stringify(shape)} -> ${expanded} k${k} s${stride}`;
          assert.deepEqual(y.shape, yRef.shape, label);
          assert.ok(relDiff(y, yRef) < 1e-5, `${label}: y differs by ${relDiff(y, yRef)} of its scale`);
          assert.ok(relDiff(pooled, tf.mean(yRef, [1, 2])) < 1e-5, `${label}: the mean differs by ${relDiff(pooled, tf.mean(yRef, [1, 2]))} of its scale`);
          // The two-op path (the expansion's output as a tensor, its SiLU in nativeDepthwiseSilu).
          const two = nativeDepthwiseSilu(native, e, wd, shift, stride, true);
          assert.ok(relDiff(y, two.y) < 1e-6, `${label}: against the two ops, y differs by ${relDiff(y, two.y)} of its scale`);
        });
        checked++;
      }
    }
  }
  assert.equal(checked, 20);
});

test("the expansion inside the depthwise op rejects an expansion weight whose rows are not x's channels, naming it", (t) => {
  if (nb === null) return t.skip(why);
  const native = nb;
  tf.tidy(() => {
    const expansion = { weight: seeded([4, 8], 1), filter: seeded([1, 1, 4, 8], 1) as tf.Tensor4D, shift: seeded([8], 2) as tf.Tensor1D };
    assert.throws(() => nativeExpandDepthwiseSilu(native, seeded([1, 5, 5, 5], 3) as tf.Tensor4D, expansion, seeded([3, 3, 8, 1], 4) as tf.Tensor4D, seeded([8], 5) as tf.Tensor1D, 1),
      /we \[5, C\], got \[1,5,5,5\] and \[4,8\]/);
  });
});

test("the fused depthwise stage rejects a shift of the wrong length, naming it", (t) => {
  if (nb === null) return t.skip(why);
  const native = nb;
  tf.tidy(() => {
    assert.throws(() => nativeDepthwiseSilu(native, seeded([1, 5, 5, 8], 1) as tf.Tensor4D, seeded([3, 3, 8, 1], 2) as tf.Tensor4D, seeded([7], 3) as tf.Tensor1D, 1, true),
      /shift must be \[8\]/);
  });
});

test("B1 in evaluation: the fused depthwise stage runs once per MBConv block, with the expansion inside where its weights are within EXPAND_FUSION_MAX_WEIGHTS, and gives the layer-by-layer logits within 1e-5", (t) => {
  if (nb === null) return t.skip(why);
  const native = nb;
  const net = buildEfficientNet("b1", makeRng(7, "eval-fusion-model"));
  // Running statistics away from their initial 0 and 1, so that the folds matter.
  for (const [key, v] of net.namedVariables()) {
    if (key.endsWith("running_mean")) v.assign(seeded(v.shape, 100, 0.2));
    if (key.endsWith("running_var")) v.assign(tf.add(tf.abs(seeded(v.shape, 101, 0.5)), 0.5));
  }
  // 4 images: from 32x32 down the expansions inside the op take whole images (row by row with fewer than 2 per thread).
  const x = seeded([4, 64, 64, 3], 5) as tf.Tensor4D;
  const calls = new Map<string, number>();
  const original = native.executeMultipleOutputs.bind(native);
  native.executeMultipleOutputs = (name, attrs, inputs, n) => {
    calls.set(name, (calls.get(name) ?? 0) + 1);
    return original(name, attrs, inputs, n);
  };
  const blocks = net.architecture.stages.flat().length;
  try {
    const logits = (fusion: "auto" | "off", expansions = true) => {
      setLayerFusion(fusion);
      setExpandFusion(expansions);
      calls.clear();
      const folds = new EvalFolds();
      const out = tf.tidy(() => net.forward(x, { training: false, folds }));
      folds.dispose();
      const expanded = calls.get("BiasInitExpandDepthwiseSilu") ?? 0;
      return { out, fused: (calls.get("BiasInitDepthwiseSilu") ?? 0) + expanded, expanded };
    };
    // The blocks whose expansion runs inside the op: weights of at most EXPAND_FUSION_MAX_WEIGHTS values.
    const small = net.architecture.stages.flat().filter((b) => b.expand !== null && b.expand.inChannels * b.expand.outChannels <= EXPAND_FUSION_MAX_WEIGHTS).length;
    const fused = logits("auto");
    const unexpanded = logits("auto", false);
    const plain = logits("off");
    assert.equal(fused.fused, blocks, `the fused stage ran ${fused.fused} times for ${blocks} blocks`);
    assert.equal(fused.expanded, small, `${fused.expanded} blocks ran their expansion inside the op, ${small} have small enough weights`);
    assert.ok(small > 0 && small < blocks, `B1 has ${small} such blocks`);
    assert.equal(unexpanded.expanded, 0);
    assert.equal(plain.fused, 0);
    const d = relDiff(fused.out, plain.out);
    const e = relDiff(fused.out, unexpanded.out);
    t.diagnostic(`max logit difference ${d.toExponential(2)} of their scale (${blocks} blocks); ${e.toExponential(2)} against every expansion its own op (${small} inside)`);
    assert.ok(d < 1e-5, `fused and layer-by-layer logits differ by ${d} of their scale`);
    assert.ok(e < 1e-6, `logits with and without the expansions inside the op differ by ${e} of their scale`);
    tf.dispose([fused.out, plain.out, unexpanded.out]);
  } finally {
    native.executeMultipleOutputs = original;
    setLayerFusion("auto");
    setExpandFusion(true);
    net.dispose();
    x.dispose();
  }
});
