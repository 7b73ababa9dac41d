// Building blocks shared by the EfficientNet backbone and the binary head: PyTorch-semantics
// convolutions, BatchNorm, SiLU, squeeze-excitation helpers, the random masks of dropout and
// stochastic depth, the initializers, and sets of variables named by PyTorch state_dict keys.
// Everything random is drawn from the caller's seeded Rng on the CPU, so masks and initial weights
// are identical on every backend and replay exactly.
//
// Two implementations of the heavy ops, same math:
// - TF.js ops (any backend: native, GPU, and the pure-JS 'cpu' backend when kernels are "off");
// - on the pure-JS 'cpu' backend, plain loops over the tensors' Float32Arrays wrapped as
//   differentiable ops with tf.customGrad. That backend's generic kernels cost ~10 ns per element
//   (one megamorphic call per element in binary ops, strided inner loops in matMul, and
//   TensorBuffer.get(...) per element in the conv filter gradients: ~1 s for the stem alone at
//   batch 64, 32x32), so a fused loop (BatchNorm + SiLU forward in one pass, its gradient in two)
//   is 10-50x faster there. The tests check both implementations against each other.
import * as tf from "@tensorflow/tfjs";
import type { Rng } from "../rng";

export type KernelMode = "auto" | "off";
let kernelMode: KernelMode = "auto";

/** "auto" (default): the plain-JS kernels on the 'cpu' backend. "off": TF.js ops everywhere (tests, benchmarks). */
export function setJsKernels(mode: KernelMode): void {
  kernelMode = mode;
}

export function usingJsKernels(): boolean {
  return kernelMode === "auto" && tf.getBackend() === "cpu";
}

/**
 * Wraps array-level forward/backward code as a differentiable TF.js op (for the 'cpu' backend,
 * where dataSync() hands out the tensor's own array without a copy). `run` gets the inputs'
 * values and returns the output plus a backward function giving one gradient per input.
 */
function jsOp(
  inputs: tf.Tensor[],
  outShape: number[],
  run: (xs: Float32Array[]) => { y: Float32Array; backward: (dy: Float32Array) => Float32Array[] },
): tf.Tensor {
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const ins = args.slice(0, inputs.length) as tf.Tensor[];
    // Saved so the engine keeps the inputs' data alive until the backward pass has run.
    (args[inputs.length] as tf.GradSaveFunc)(ins);
    const { y, backward } = run(ins.map((t) => t.dataSync() as Float32Array));
    return {
      value: tf.tensor(y, outShape, "float32"),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        backward(dy.dataSync() as Float32Array).map((g, i) => tf.tensor(g, saved[i].shape, "float32")),
    };
  });
  return op(...inputs);
}

/** The [cols, rows] transpose of a row-major [rows, cols] matrix. */
function transposeValues(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
  return out;
}

/**
 * c [m, n] = a [m, k] times bt [n, k] transposed: both operands run along k, so every product is
 * a dot product of two contiguous rows. Blocks of 4x4 outputs keep 16 sums in registers and reuse
 * each loaded value 4 times (~5x the speed of the naive triple loop in V8).
 */
function gemmNT(a: Float32Array, bt: Float32Array, m: number, n: number, k: number): Float32Array {
  const c = new Float32Array(m * n);
  const m4 = m - (m % 4);
  const n4 = n - (n % 4);
  for (let i = 0; i < m4; i += 4) {
    const r0 = i * k;
    const r1 = r0 + k;
    const r2 = r1 + k;
    const r3 = r2 + k;
    for (let j = 0; j < n4; j += 4) {
      const q0 = j * k;
      const q1 = q0 + k;
      const q2 = q1 + k;
      const q3 = q2 + k;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
      for (let p = 0; p < k; p++) {
        const a0 = a[r0 + p], a1 = a[r1 + p], a2 = a[r2 + p], a3 = a[r3 + p];
        const b0 = bt[q0 + p], b1 = bt[q1 + p], b2 = bt[q2 + p], b3 = bt[q3 + p];
        s00 += a0 * b0; s01 += a0 * b1; s02 += a0 * b2; s03 += a0 * b3;
        s10 += a1 * b0; s11 += a1 * b1; s12 += a1 * b2; s13 += a1 * b3;
        s20 += a2 * b0; s21 += a2 * b1; s22 += a2 * b2; s23 += a2 * b3;
        s30 += a3 * b0; s31 += a3 * b1; s32 += a3 * b2; s33 += a3 * b3;
      }
      let o = i * n + j;
      c[o] = s00; c[o + 1] = s01; c[o + 2] = s02; c[o + 3] = s03;
      o += n;
      c[o] = s10; c[o + 1] = s11; c[o + 2] = s12; c[o + 3] = s13;
      o += n;
      c[o] = s20; c[o + 1] = s21; c[o + 2] = s22; c[o + 3] = s23;
      o += n;
      c[o] = s30; c[o + 1] = s31; c[o + 2] = s32; c[o + 3] = s33;
    }
  }
  // The ragged right columns of the blocked rows, then the ragged bottom rows.
  for (let i = 0; i < m; i++) {
    for (let j = i < m4 ? n4 : 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p] * bt[j * k + p];
      c[i * n + j] = s;
    }
  }
  return c;
}

/** The three products of y = x w and its gradients, for row-major [m, k] x and [k, n] w. */
const MATMUL = {
  forward: (x: Float32Array, w: Float32Array, m: number, k: number, n: number): Float32Array => gemmNT(x, transposeValues(w, k, n), m, n, k),
  /** dx = dy w^T: dy's rows and w's rows both run along n. */
  inputGrad: (dy: Float32Array, w: Float32Array, m: number, k: number, n: number): Float32Array => gemmNT(dy, w, m, k, n),
  /** dw = x^T dy. */
  weightGrad: (x: Float32Array, dy: Float32Array, m: number, k: number, n: number): Float32Array =>
    gemmNT(transposeValues(x, m, k), transposeValues(dy, m, n), k, n, m),
};

/** x [m, k] @ w [k, n] with its two gradients, as plain loops. */
function jsMatMul(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  const [m, k] = x.shape;
  const n = w.shape[1];
  return jsOp([x, w], [m, n], ([xv, wv]) => ({
    y: MATMUL.forward(xv, wv, m, k, n),
    backward: (dy) => [MATMUL.inputGrad(dy, wv, m, k, n), MATMUL.weightGrad(xv, dy, m, k, n)],
  })) as tf.Tensor2D;
}

/** x [m, k] @ w [k, n]: the classifier, the head, and every 1x1 convolution. */
export function dense(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  return usingJsKernels() ? jsMatMul(x, w) : tf.matMul(x, w);
}

/**
 * 1x1 convolution, weight HWIO [1, 1, in, out]: a matrix product over [N*H*W, in] on the 'cpu'
 * backend (~5x faster there than its conv2d kernel even before the plain-JS kernels) and on the
 * native one (TF's CPU Conv2DBackpropInput took 3x the time of the two MatMuls that replace it);
 * conv2d elsewhere (WebGL, WebGPU: their conv kernels are the tuned path).
 */
export function pointwiseConv(x: tf.Tensor4D, weight: tf.Tensor4D): tf.Tensor4D {
  const backend = tf.getBackend();
  if (backend !== "cpu" && backend !== "tensorflow") return tf.conv2d(x, weight, 1, "valid");
  const [n, h, w, c] = x.shape;
  const out = weight.shape[3];
  const y = dense(tf.reshape(x, [n * h * w, c]), tf.reshape(weight, [c, out]));
  return tf.reshape(y, [n, h, w, out]);
}

/**
 * k x k convolution (weight HWIO) with PyTorch's padding: (k-1)/2 on every side. TF's 'same' pads
 * the extra row and column at the bottom/right only, which shifts every stride-2 output by one pixel.
 */
export function symmetricConv(x: tf.Tensor4D, weight: tf.Tensor4D, stride: number): tf.Tensor4D {
  if (usingJsKernels()) return jsConv(FULL_CONV, x, weight, stride);
  const { input, padding } = withSymmetricPadding(x, weight.shape[0], stride);
  return tf.conv2d(input, weight, stride, padding);
}

/** Depthwise k x k convolution (weight [k, k, C, 1]) with PyTorch's symmetric padding. */
export function symmetricDepthwiseConv(x: tf.Tensor4D, weight: tf.Tensor4D, stride: number): tf.Tensor4D {
  if (usingJsKernels()) return jsConv(DEPTHWISE_CONV, x, weight, stride);
  const { input, padding } = withSymmetricPadding(x, weight.shape[0], stride);
  return tf.depthwiseConv2d(input, weight, stride, padding);
}

/**
 * PyTorch pads (k-1)/2 on every side. At stride 1 TF's 'same' does exactly that (for odd k); at
 * stride 2 'same' puts the extra pixel bottom/right, so the input is zero-padded explicitly and
 * convolved 'valid'. (Numeric explicit padding would also do, but the native tfjs-node backend
 * accepts only 'same' and 'valid'.)
 */
function withSymmetricPadding(x: tf.Tensor4D, kernel: number, stride: number): { input: tf.Tensor4D; padding: "same" | "valid" } {
  if (stride === 1 && kernel % 2 === 1) return { input: x, padding: "same" };
  const p = symmetricPad(kernel);
  return { input: tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]), padding: "valid" };
}

function symmetricPad(kernel: number): number {
  if (kernel % 2 !== 1) throw new Error(`src/model/ops.ts: symmetric padding needs an odd kernel, got ${kernel}`);
  return (kernel - 1) / 2;
}

interface ConvGeometry {
  n: number;
  h: number;
  w: number;
  cin: number;
  cout: number;
  k: number;
  stride: number;
  pad: number;
  ho: number;
  wo: number;
}

interface ConvKernels {
  depthwise: boolean;
  forward(x: Float32Array, w: Float32Array, g: ConvGeometry): Float32Array;
  /** Returns [dx, dw]. */
  backward(x: Float32Array, w: Float32Array, dy: Float32Array, g: ConvGeometry): [Float32Array, Float32Array];
}

/**
 * Patches [N*Ho*Wo, k*k*cin] of x (zeros where a tap falls in the padding), ordered (i, j, ci) to
 * match an HWIO weight flattened to [k*k*cin, cout].
 */
function im2col(x: Float32Array, g: ConvGeometry): Float32Array {
  const { k, cin } = g;
  const patch = k * k * cin;
  const cols = new Float32Array(g.n * g.ho * g.wo * patch);
  for (let n = 0; n < g.n; n++) {
    for (let oh = 0; oh < g.ho; oh++) {
      for (let ow = 0; ow < g.wo; ow++) {
        const base = ((n * g.ho + oh) * g.wo + ow) * patch;
        for (let i = 0; i < k; i++) {
          const ih = oh * g.stride - g.pad + i;
          if (ih < 0 || ih >= g.h) continue;
          for (let j = 0; j < k; j++) {
            const iw = ow * g.stride - g.pad + j;
            if (iw < 0 || iw >= g.w) continue;
            const src = ((n * g.h + ih) * g.w + iw) * cin;
            const dst = base + (i * k + j) * cin;
            for (let ci = 0; ci < cin; ci++) cols[dst + ci] = x[src + ci];
          }
        }
      }
    }
  }
  return cols;
}

/** The adjoint of im2col: adds each patch gradient back onto the input pixels it came from. */
function col2im(cols: Float32Array, g: ConvGeometry): Float32Array {
  const { k, cin } = g;
  const patch = k * k * cin;
  const dx = new Float32Array(g.n * g.h * g.w * cin);
  for (let n = 0; n < g.n; n++) {
    for (let oh = 0; oh < g.ho; oh++) {
      for (let ow = 0; ow < g.wo; ow++) {
        const base = ((n * g.ho + oh) * g.wo + ow) * patch;
        for (let i = 0; i < k; i++) {
          const ih = oh * g.stride - g.pad + i;
          if (ih < 0 || ih >= g.h) continue;
          for (let j = 0; j < k; j++) {
            const iw = ow * g.stride - g.pad + j;
            if (iw < 0 || iw >= g.w) continue;
            const dst = ((n * g.h + ih) * g.w + iw) * cin;
            const src = base + (i * k + j) * cin;
            for (let ci = 0; ci < cin; ci++) dx[dst + ci] += cols[src + ci];
          }
        }
      }
    }
  }
  return dx;
}

/** A full convolution as im2col then a matrix product (only the 3-channel stem uses one here). */
const FULL_CONV: ConvKernels = {
  depthwise: false,
  forward(x, w, g) {
    const rows = g.n * g.ho * g.wo;
    return MATMUL.forward(im2col(x, g), w, rows, g.k * g.k * g.cin, g.cout);
  },
  backward(x, w, dy, g) {
    const rows = g.n * g.ho * g.wo;
    const patch = g.k * g.k * g.cin;
    const dw = MATMUL.weightGrad(im2col(x, g), dy, rows, patch, g.cout);
    const dx = col2im(MATMUL.inputGrad(dy, w, rows, patch, g.cout), g);
    return [dx, dw];
  },
};

/** Depthwise convolution: for each output pixel and each tap inside the image, one pass over the channels. */
const DEPTHWISE_CONV: ConvKernels = {
  depthwise: true,
  forward(x, w, g) {
    const { k, cin: c } = g;
    const y = new Float32Array(g.n * g.ho * g.wo * c);
    for (let n = 0; n < g.n; n++) {
      for (let oh = 0; oh < g.ho; oh++) {
        for (let ow = 0; ow < g.wo; ow++) {
          const yo = ((n * g.ho + oh) * g.wo + ow) * c;
          for (let i = 0; i < k; i++) {
            const ih = oh * g.stride - g.pad + i;
            if (ih < 0 || ih >= g.h) continue;
            for (let j = 0; j < k; j++) {
              const iw = ow * g.stride - g.pad + j;
              if (iw < 0 || iw >= g.w) continue;
              const xo = ((n * g.h + ih) * g.w + iw) * c;
              const wo = (i * k + j) * c;
              for (let ch = 0; ch < c; ch++) y[yo + ch] += x[xo + ch] * w[wo + ch];
            }
          }
        }
      }
    }
    return y;
  },
  backward(x, w, dy, g) {
    const { k, cin: c } = g;
    const dx = new Float32Array(x.length);
    const dw = new Float32Array(w.length);
    for (let n = 0; n < g.n; n++) {
      for (let oh = 0; oh < g.ho; oh++) {
        for (let ow = 0; ow < g.wo; ow++) {
          const yo = ((n * g.ho + oh) * g.wo + ow) * c;
          for (let i = 0; i < k; i++) {
            const ih = oh * g.stride - g.pad + i;
            if (ih < 0 || ih >= g.h) continue;
            for (let j = 0; j < k; j++) {
              const iw = ow * g.stride - g.pad + j;
              if (iw < 0 || iw >= g.w) continue;
              const xo = ((n * g.h + ih) * g.w + iw) * c;
              const wo = (i * k + j) * c;
              for (let ch = 0; ch < c; ch++) {
                const d = dy[yo + ch];
                dw[wo + ch] += d * x[xo + ch];
                dx[xo + ch] += d * w[wo + ch];
              }
            }
          }
        }
      }
    }
    return [dx, dw];
  },
};

function jsConv(kernels: ConvKernels, x: tf.Tensor4D, weight: tf.Tensor4D, stride: number): tf.Tensor4D {
  const [n, h, w, cin] = x.shape;
  const [k, k2, wIn, wOut] = weight.shape;
  if (k !== k2 || wIn !== cin || (kernels.depthwise && wOut !== 1)) {
    throw new Error(`src/model/ops.ts: conv weight [${weight.shape.join(", ")}] does not fit input [${x.shape.join(", ")}]`);
  }
  const pad = symmetricPad(k);
  const ho = Math.floor((h + 2 * pad - k) / stride) + 1;
  const wo = Math.floor((w + 2 * pad - k) / stride) + 1;
  const g: ConvGeometry = { n, h, w, cin, cout: kernels.depthwise ? cin : wOut, k, stride, pad, ho, wo };
  return jsOp([x, weight], [n, ho, wo, g.cout], ([xv, wv]) => ({
    y: kernels.forward(xv, wv, g),
    backward: (dy) => kernels.backward(xv, wv, dy, g),
  })) as tf.Tensor4D;
}

/** SiLU (swish): x * sigmoid(x). */
export function silu<T extends tf.Tensor>(x: T): T {
  return tf.mul(x, tf.sigmoid(x));
}

/** The four tensors of one torch.nn.BatchNorm2d, plus its constants. */
export interface BatchNormState {
  /** The variables, or (when a block is recomputed for its gradient) tensors standing in for them. */
  gamma: tf.Tensor;
  beta: tf.Tensor;
  runningMean: tf.Variable;
  runningVar: tf.Variable;
  eps: number;
  /** PyTorch convention: running = (1 - momentum) * running + momentum * batch. */
  momentum: number;
}

export interface BatchNormMode {
  /** Batch statistics (true) or running statistics (false) for normalizing. */
  training: boolean;
  /** In training mode, also write the updated running statistics into the buffers. */
  updateRunningStats: boolean;
}

/**
 * BatchNorm2d over NHWC with PyTorch's semantics, then SiLU if `activation`. Training normalizes
 * with the biased batch variance and folds the unbiased one into running_var. The buffers are
 * assigned here, inside the forward pass, so the update happens even when the forward runs under
 * tf.variableGrads; the assigned values are off the gradient path and the variables keep their
 * data when tidy disposes the temporaries.
 */
export function batchNormAct(x: tf.Tensor4D, bn: BatchNormState, mode: BatchNormMode, activation: boolean): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const count = n * h * w;
  if (mode.training && count <= 1) {
    // PyTorch refuses this too: the unbiased variance of one value is undefined.
    throw new Error(`src/model/ops.ts: BatchNorm in training mode needs more than 1 value per channel, got input shape [${x.shape.join(", ")}]`);
  }
  if (usingJsKernels()) return tf.reshape(jsBatchNormAct(tf.reshape(x, [count, c]), bn, mode, activation), [n, h, w, c]);
  const native = nativeOps();
  if (native !== null && mode.training) return nativeTrainingBatchNormAct(native, x, bn, mode.updateRunningStats, activation);
  let mean: tf.Tensor = bn.runningMean;
  let variance: tf.Tensor = bn.runningVar;
  if (mode.training) {
    ({ mean, variance } = tf.moments(x, [0, 1, 2]));
    if (mode.updateRunningStats) {
      const m = bn.momentum;
      bn.runningMean.assign(tf.add(tf.mul(bn.runningMean, 1 - m), tf.mul(mean, m)));
      bn.runningVar.assign(tf.add(tf.mul(bn.runningVar, 1 - m), tf.mul(variance, (m * count) / (count - 1))));
    }
  }
  const y = tf.batchNorm4d(x, mean as tf.Tensor1D, variance as tf.Tensor1D, bn.beta as tf.Tensor1D, bn.gamma as tf.Tensor1D, bn.eps);
  return activation ? silu(y) : y;
}

// Training-mode BatchNorm on the native backend. TF.js composes it from tf.moments and
// batchNorm's generic gradient: ~25 kernels forward and backward per layer, with every
// intermediate (centred x, squares, normalized x, sigmoid, ...) held by the tape until the
// backward pass. libtensorflow has the fused kernels PyTorch's CPU path uses too:
// FusedBatchNormV3 (is_training) takes the batch statistics, normalizes, and folds the running
// statistics with PyTorch's rule (exponential_avg_factor = momentum, unbiased variance) in one
// call; FusedBatchNormGradV3 returns dx, dgamma, dbeta in one. tfjs-node registers them for
// inference only, but its backend runs any TensorFlow op by name (executeMultipleOutputs).

interface NativeAttr {
  name: string;
  type: number;
  value: number | boolean | string;
}

/** The parts of tfjs-node's NodeJSKernelBackend used here (duck-typed: src/ does not depend on tfjs-node). */
interface NativeKernelBackend {
  binding: { TF_ATTR_TYPE: number; TF_ATTR_FLOAT: number; TF_ATTR_BOOL: number; TF_ATTR_STRING: number; TF_FLOAT: number };
  executeMultipleOutputs(name: string, attrs: NativeAttr[], inputs: tf.Tensor[], numOutputs: number): tf.Tensor[];
}

/** tfjs-node's backend when it is the active one (CPU or GPU build), else null. */
function nativeOps(): NativeKernelBackend | null {
  if (tf.getBackend() !== "tensorflow") return null;
  const b = tf.backend() as unknown as Partial<NativeKernelBackend>;
  return typeof b.executeMultipleOutputs === "function" && b.binding !== undefined ? (b as NativeKernelBackend) : null;
}

function fusedBatchNormAttrs(nb: NativeKernelBackend, eps: number): NativeAttr[] {
  const B = nb.binding;
  return [
    { name: "T", type: B.TF_ATTR_TYPE, value: B.TF_FLOAT },
    { name: "U", type: B.TF_ATTR_TYPE, value: B.TF_FLOAT },
    { name: "epsilon", type: B.TF_ATTR_FLOAT, value: eps },
    { name: "data_format", type: B.TF_ATTR_STRING, value: "NHWC" },
    { name: "is_training", type: B.TF_ATTR_BOOL, value: true },
  ];
}

/**
 * Batch-statistics BatchNorm (+ SiLU) as one differentiable op. The backward pass keeps x, gamma,
 * TF's saved batch statistics and, with SiLU, s = sigmoid(z) and y = z * s (y is the next layer's
 * input, alive anyway): silu'(z) = s + y * (1 - s), so z itself is not kept.
 */
function nativeTrainingBatchNormAct(nb: NativeKernelBackend, x: tf.Tensor4D, bn: BatchNormState, updateRunningStats: boolean, activation: boolean): tf.Tensor4D {
  const attrs = fusedBatchNormAttrs(nb, bn.eps);
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xIn, gamma, beta] = args as tf.Tensor[];
    const save = args[3] as tf.GradSaveFunc;
    // With factor 1 TF ignores the mean/variance inputs (they may be empty) and returns the batch's own.
    const factor = updateRunningStats ? bn.momentum : 1;
    const running = updateRunningStats ? [bn.runningMean, bn.runningVar] : [tf.tensor1d([]), tf.tensor1d([])];
    const [z, newMean, newVar, savedMean, savedVar, reserve] = nb.executeMultipleOutputs(
      "FusedBatchNormV3",
      [...attrs, { name: "exponential_avg_factor", type: nb.binding.TF_ATTR_FLOAT, value: factor }],
      [xIn, gamma, beta, ...running],
      6,
    );
    if (updateRunningStats) {
      bn.runningMean.assign(newMean);
      bn.runningVar.assign(newVar);
    }
    const bnSaved = [xIn, gamma, savedMean, savedVar, reserve];
    if (!activation) {
      save(bnSaved);
      return { value: z, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => fusedBatchNormGrad(nb, attrs, dy, saved) };
    }
    const s = tf.sigmoid(z);
    const y = tf.mul(z, s);
    save([...bnSaved, s, y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sv, yv] = saved.slice(5);
        return fusedBatchNormGrad(nb, attrs, tf.mul(dy, tf.sub(tf.add(sv, yv), tf.mul(yv, sv))), saved);
      },
    };
  });
  return op(x, bn.gamma, bn.beta) as tf.Tensor4D;
}

/** [dx, dgamma, dbeta] from FusedBatchNormGradV3, given dL/dz and the forward's saved tensors. */
function fusedBatchNormGrad(nb: NativeKernelBackend, attrs: NativeAttr[], dz: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] {
  const [x, gamma, savedMean, savedVar, reserve] = saved;
  return nb.executeMultipleOutputs("FusedBatchNormGradV3", attrs, [dz, x, gamma, savedMean, savedVar, reserve], 5).slice(0, 3);
}

/** Per-channel mean and biased variance of [rows, c] values, accumulated in float64. */
function channelMoments(x: Float32Array, rows: number, c: number): { mean: Float64Array; variance: Float64Array } {
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  for (let r = 0; r < rows; r++) for (let ch = 0; ch < c; ch++) mean[ch] += x[r * c + ch];
  for (let ch = 0; ch < c; ch++) mean[ch] /= rows;
  for (let r = 0; r < rows; r++) {
    for (let ch = 0; ch < c; ch++) {
      const d = x[r * c + ch] - mean[ch];
      variance[ch] += d * d;
    }
  }
  for (let ch = 0; ch < c; ch++) variance[ch] /= rows;
  return { mean, variance };
}

/**
 * BatchNorm (+ SiLU) of [rows, C] values in plain loops. Gradient with batch statistics:
 * dx = gamma / sigma * (dz - mean(dz) - xhat * mean(dz * xhat)); with running statistics the two
 * mean terms vanish. The forward keeps sigmoid(z) so the backward needs no exp.
 */
function jsBatchNormAct(x: tf.Tensor2D, bn: BatchNormState, mode: BatchNormMode, activation: boolean): tf.Tensor2D {
  const [rows, c] = x.shape;
  return jsOp([x, bn.gamma, bn.beta], [rows, c], ([xv, gamma, beta]) => {
    let mean: Float64Array;
    let variance: Float64Array;
    if (mode.training) {
      ({ mean, variance } = channelMoments(xv, rows, c));
      if (mode.updateRunningStats) {
        const m = bn.momentum;
        const rm = bn.runningMean.dataSync();
        const rv = bn.runningVar.dataSync();
        const newMean = new Float32Array(c);
        const newVar = new Float32Array(c);
        for (let ch = 0; ch < c; ch++) {
          newMean[ch] = (1 - m) * rm[ch] + m * mean[ch];
          newVar[ch] = (1 - m) * rv[ch] + ((m * rows) / (rows - 1)) * variance[ch];
        }
        tf.tidy(() => {
          bn.runningMean.assign(tf.tensor1d(newMean));
          bn.runningVar.assign(tf.tensor1d(newVar));
        });
      }
    } else {
      mean = Float64Array.from(bn.runningMean.dataSync());
      variance = Float64Array.from(bn.runningVar.dataSync());
    }
    const invStd = new Float64Array(c);
    const scale = new Float64Array(c);
    const shift = new Float64Array(c);
    for (let ch = 0; ch < c; ch++) {
      invStd[ch] = 1 / Math.sqrt(variance[ch] + bn.eps);
      scale[ch] = gamma[ch] * invStd[ch];
      shift[ch] = beta[ch] - mean[ch] * scale[ch];
    }
    const y = new Float32Array(rows * c);
    const gate = activation ? new Float32Array(rows * c) : null;
    for (let r = 0; r < rows; r++) {
      const o = r * c;
      for (let ch = 0; ch < c; ch++) {
        const z = xv[o + ch] * scale[ch] + shift[ch];
        if (gate === null) {
          y[o + ch] = z;
        } else {
          const s = 1 / (1 + Math.exp(-z));
          gate[o + ch] = s;
          y[o + ch] = z * s;
        }
      }
    }
    const backward = (dy: Float32Array): Float32Array[] => {
      // dz = dy * silu'(z), with silu'(z) = s * (1 + z * (1 - s)).
      const dz = gate === null ? dy : new Float32Array(rows * c);
      if (gate !== null) {
        for (let r = 0; r < rows; r++) {
          const o = r * c;
          for (let ch = 0; ch < c; ch++) {
            const s = gate[o + ch];
            const z = xv[o + ch] * scale[ch] + shift[ch];
            dz[o + ch] = dy[o + ch] * s * (1 + z * (1 - s));
          }
        }
      }
      const sumDz = new Float64Array(c);
      const sumDzXhat = new Float64Array(c);
      for (let r = 0; r < rows; r++) {
        const o = r * c;
        for (let ch = 0; ch < c; ch++) {
          const d = dz[o + ch];
          sumDz[ch] += d;
          sumDzXhat[ch] += d * (xv[o + ch] - mean[ch]) * invStd[ch];
        }
      }
      const dx = new Float32Array(rows * c);
      if (mode.training) {
        const meanDz = new Float64Array(c);
        const meanDzXhat = new Float64Array(c);
        for (let ch = 0; ch < c; ch++) {
          meanDz[ch] = sumDz[ch] / rows;
          meanDzXhat[ch] = sumDzXhat[ch] / rows;
        }
        for (let r = 0; r < rows; r++) {
          const o = r * c;
          for (let ch = 0; ch < c; ch++) {
            const xhat = (xv[o + ch] - mean[ch]) * invStd[ch];
            dx[o + ch] = scale[ch] * (dz[o + ch] - meanDz[ch] - xhat * meanDzXhat[ch]);
          }
        }
      } else {
        for (let r = 0; r < rows; r++) {
          const o = r * c;
          for (let ch = 0; ch < c; ch++) dx[o + ch] = scale[ch] * dz[o + ch];
        }
      }
      return [dx, Float32Array.from(sumDzXhat), Float32Array.from(sumDz)];
    };
    return { y, backward };
  }) as tf.Tensor2D;
}

/** Mean over H and W of NHWC, as [N, C]. */
export function spatialMean(x: tf.Tensor4D): tf.Tensor2D {
  if (!usingJsKernels()) return tf.mean(x, [1, 2]) as tf.Tensor2D;
  const [n, h, w, c] = x.shape;
  const p = h * w;
  return jsOp([x], [n, c], ([xv]) => {
    const y = new Float32Array(n * c);
    for (let b = 0; b < n; b++) {
      for (let q = 0; q < p; q++) {
        const xo = (b * p + q) * c;
        for (let ch = 0; ch < c; ch++) y[b * c + ch] += xv[xo + ch];
      }
    }
    for (let i = 0; i < y.length; i++) y[i] /= p;
    return {
      y,
      backward: (dy) => {
        const dx = new Float32Array(n * p * c);
        for (let b = 0; b < n; b++) {
          for (let q = 0; q < p; q++) {
            const xo = (b * p + q) * c;
            for (let ch = 0; ch < c; ch++) dx[xo + ch] = dy[b * c + ch] / p;
          }
        }
        return [dx];
      },
    };
  }) as tf.Tensor2D;
}

/** x [N, H, W, C] times a per-sample, per-channel scale [N, C] (the SE gate). */
export function scaleChannels(x: tf.Tensor4D, scale: tf.Tensor2D): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  if (!usingJsKernels()) return tf.mul(x, tf.reshape(scale, [n, 1, 1, c]));
  const p = h * w;
  return jsOp([x, scale], [n, h, w, c], ([xv, sv]) => {
    const y = new Float32Array(n * p * c);
    for (let b = 0; b < n; b++) {
      for (let q = 0; q < p; q++) {
        const o = (b * p + q) * c;
        for (let ch = 0; ch < c; ch++) y[o + ch] = xv[o + ch] * sv[b * c + ch];
      }
    }
    return {
      y,
      backward: (dy) => {
        const dx = new Float32Array(n * p * c);
        const ds = new Float32Array(n * c);
        for (let b = 0; b < n; b++) {
          for (let q = 0; q < p; q++) {
            const o = (b * p + q) * c;
            for (let ch = 0; ch < c; ch++) {
              dx[o + ch] = dy[o + ch] * sv[b * c + ch];
              ds[b * c + ch] += dy[o + ch] * xv[o + ch];
            }
          }
        }
        return [dx, ds];
      },
    };
  }) as tf.Tensor4D;
}

/**
 * Inverted-dropout mask: each entry is 0 with probability `dropProb`, else 1/(1-dropProb), as in
 * torch.nn.Dropout and in torchvision's stochastic_depth (row mode uses one entry per sample).
 */
export function dropMask(size: number, dropProb: number, rng: Rng): Float32Array {
  if (!(dropProb >= 0 && dropProb < 1)) {
    throw new Error(`src/model/ops.ts: drop probability must be in [0, 1), got ${dropProb}`);
  }
  const keep = 1 - dropProb;
  const scale = 1 / keep;
  const mask = new Float32Array(size);
  for (let i = 0; i < size; i++) mask[i] = rng.next() < keep ? scale : 0;
  return mask;
}

/** x times a per-sample factor (stochastic depth's row mask, one entry per sample). */
export function scaleRows<T extends tf.Tensor>(x: T, perSample: Float32Array): T {
  const n = x.shape[0];
  if (perSample.length !== n) throw new Error(`src/model/ops.ts: row mask has ${perSample.length} entries for a batch of ${n}`);
  const broadcastShape = [n, ...x.shape.slice(1).map(() => 1)];
  if (!usingJsKernels()) return tf.mul(x, tf.tensor(perSample, broadcastShape, "float32"));
  // The 'cpu' backend broadcasts [N, 1, 1, 1] through its slow generic path; a full-size
  // constant takes the fast one.
  const rowSize = x.size / n;
  const full = new Float32Array(x.size);
  for (let i = 0; i < n; i++) full.fill(perSample[i], i * rowSize, (i + 1) * rowSize);
  return tf.mul(x, tf.tensor(full, x.shape, "float32"));
}

/**
 * torch.nn.init.kaiming_normal_(mode="fan_out", nonlinearity="leaky_relu", a=0): normal with
 * std = sqrt(2 / fan_out), where fan_out = torch weight size(0) * kh * kw (for a depthwise weight
 * [C, 1, k, k] that is C * k * k).
 */
export function kaimingNormalFanOut(size: number, fanOut: number, rng: Rng): Float32Array {
  const std = Math.sqrt(2 / fanOut);
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = rng.normal() * std;
  return values;
}

/** Uniform in [-bound, bound), as torch.nn.init.uniform_(-bound, bound). */
export function uniformSymmetric(size: number, bound: number, rng: Rng): Float32Array {
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = (2 * rng.next() - 1) * bound;
  return values;
}

/** How one variable starts, in torchvision's terms. */
export type Init =
  | { kind: "kaimingNormalFanOut"; fanOut: number }
  | { kind: "uniform"; bound: number }
  | { kind: "constant"; value: number };

/** One entry of a model's state_dict, in the order PyTorch lists it. */
export interface VariableSpec {
  /** The PyTorch state_dict key, e.g. "features.0.1.running_var". */
  key: string;
  /** Shape of the TF.js variable (layouts: see the top of efficientnet.ts). */
  shape: number[];
  /** Shape of the same tensor in PyTorch. */
  torchShape: number[];
  /** false for BatchNorm running statistics (buffers, not parameters). */
  trainable: boolean;
  init: Init;
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function initialValues(spec: VariableSpec, rng: Rng): Float32Array {
  const size = sizeOf(spec.shape);
  switch (spec.init.kind) {
    case "kaimingNormalFanOut":
      return kaimingNormalFanOut(size, spec.init.fanOut, rng);
    case "uniform":
      return uniformSymmetric(size, spec.init.bound, rng);
    case "constant":
      return new Float32Array(size).fill(spec.init.value);
  }
}

// TF.js registers variables globally by name and refuses duplicates. A model's variables carry
// the bare state_dict keys when those are free (the usual case: one live model), else a prefix
// "m<k>/" with the smallest free k, so several models (both arms of a trial, say) can coexist.
function freeNamespace(firstKey: string): string {
  const taken = tf.engine().registeredVariables;
  if (taken[firstKey] === undefined) return "";
  for (let k = 1; ; k++) if (taken[`m${k}/${firstKey}`] === undefined) return `m${k}/`;
}

/**
 * Creates the variables of a plan in plan order, drawing their initial values from `rng` in that
 * order: the same plan and the same Rng keys give bit-identical weights.
 */
export function createVariables(plan: readonly VariableSpec[], rng: Rng): Map<string, tf.Variable> {
  const ns = plan.length > 0 ? freeNamespace(plan[0].key) : "";
  const vars = new Map<string, tf.Variable>();
  for (const spec of plan) {
    const values = initialValues(spec, rng);
    const initial = tf.tensor(values, spec.shape, "float32");
    vars.set(spec.key, tf.variable(initial, spec.trainable, ns + spec.key));
    initial.dispose(); // the variable holds its own reference to the data
  }
  return vars;
}

/** Copies of every variable's values, by key (safe to keep: later training does not change them). */
export function readWeights(vars: ReadonlyMap<string, tf.Variable>): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [key, v] of vars) out.set(key, Float32Array.from(v.dataSync() as Float32Array));
  return out;
}

/**
 * Overwrites every variable from `weights`, which must hold exactly the same keys with the same
 * sizes; nothing is written unless all of them match. `owner` names the model in errors.
 */
export function writeWeights(vars: ReadonlyMap<string, tf.Variable>, weights: ReadonlyMap<string, Float32Array>, owner: string): void {
  const missing = [...vars.keys()].filter((k) => !weights.has(k));
  const unexpected = [...weights.keys()].filter((k) => !vars.has(k));
  if (missing.length > 0 || unexpected.length > 0) {
    const show = (ks: string[]): string => (ks.length > 5 ? `${ks.slice(0, 5).join(", ")}, ... (${ks.length})` : ks.join(", "));
    throw new Error(`${owner}: setWeights: key mismatch; missing [${show(missing)}], unexpected [${show(unexpected)}]`);
  }
  for (const [key, v] of vars) {
    const values = weights.get(key) as Float32Array;
    if (values.length !== v.size) {
      throw new Error(`${owner}: setWeights: "${key}" has ${values.length} values, expected ${v.size} (shape [${v.shape.join(", ")}])`);
    }
  }
  for (const [key, v] of vars) {
    tf.tidy(() => v.assign(tf.tensor(weights.get(key) as Float32Array, v.shape, "float32")));
  }
}
