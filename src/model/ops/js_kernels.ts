// The pure-JS kernels of the matrix products and convolutions, for TF.js's pure-JS 'cpu' backend:
// plain loops over the tensors' Float32Arrays, wrapped as differentiable ops with tf.customGrad
// (jsOp). That backend's generic kernels cost ~10 ns per element (one megamorphic call per element
// in binary ops, strided inner loops in matMul, and TensorBuffer.get(...) per element in the conv
// filter gradients: ~1 s for the stem alone at batch 64, 32x32), so these loops are 10-50x faster
// there. Same math as the TF.js ops; test/model.test.ts checks each against them.
//
// May touch: @tensorflow/tfjs (tensors in and out, customGrad) and ops/padding.ts, nothing else.
// Called only by ops/layers.ts (which decides when) and ops/js_channel_kernels.ts (jsOp).
import * as tf from "@tensorflow/tfjs";
import { convOutputSize, symmetricPad } from "./padding";

const WHERE = "src/model/ops/js_kernels.ts";

/**
 * Wraps array-level forward/backward code as a differentiable TF.js op (for the 'cpu' backend,
 * where dataSync() hands out the tensor's own array without a copy). `run` gets the inputs'
 * values and returns the output plus a backward function giving one gradient per input.
 */
export function jsOp(
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
export function jsMatMul(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  const [m, k] = x.shape;
  const n = w.shape[1];
  return jsOp([x, w], [m, n], ([xv, wv]) => ({
    y: MATMUL.forward(xv, wv, m, k, n),
    backward: (dy) => [MATMUL.inputGrad(dy, wv, m, k, n), MATMUL.weightGrad(xv, dy, m, k, n)],
  })) as tf.Tensor2D;
}

interface ConvGeometry {
  n: number;
  h: number;
  w: number;
  cin: number;
  cout: number;
  k: number;
  ho: number;
  wo: number;
  /** insideTaps() of one image. */
  taps: Int32Array;
}

/**
 * The taps of a k x k convolution (stride, symmetric padding `pad`) that fall inside one h x w
 * image, in the order (oh, ow, i, j): triples of output pixel oh * wo + ow, input pixel
 * ih * w + iw, and tap i * k + j. The kernels below walk this list image by image, so each sums
 * its terms in that fixed order.
 */
function insideTaps(h: number, w: number, k: number, stride: number, pad: number, ho: number, wo: number): Int32Array {
  const taps: number[] = [];
  for (let oh = 0; oh < ho; oh++) {
    for (let ow = 0; ow < wo; ow++) {
      for (let i = 0; i < k; i++) {
        const ih = oh * stride - pad + i;
        if (ih < 0 || ih >= h) continue;
        for (let j = 0; j < k; j++) {
          const iw = ow * stride - pad + j;
          if (iw >= 0 && iw < w) taps.push(oh * wo + ow, ih * w + iw, i * k + j);
        }
      }
    }
  }
  return Int32Array.from(taps);
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
  const { cin, taps } = g;
  const kk = g.k * g.k;
  const cols = new Float32Array(g.n * g.ho * g.wo * kk * cin);
  for (let n = 0; n < g.n; n++) {
    const outBase = n * g.ho * g.wo;
    const inBase = n * g.h * g.w;
    for (let t = 0; t < taps.length; t += 3) {
      const dst = ((outBase + taps[t]) * kk + taps[t + 2]) * cin;
      const src = (inBase + taps[t + 1]) * cin;
      for (let ci = 0; ci < cin; ci++) cols[dst + ci] = x[src + ci];
    }
  }
  return cols;
}

/** The adjoint of im2col: adds each patch gradient back onto the input pixels it came from. */
function col2im(cols: Float32Array, g: ConvGeometry): Float32Array {
  const { cin, taps } = g;
  const kk = g.k * g.k;
  const dx = new Float32Array(g.n * g.h * g.w * cin);
  for (let n = 0; n < g.n; n++) {
    const outBase = n * g.ho * g.wo;
    const inBase = n * g.h * g.w;
    for (let t = 0; t < taps.length; t += 3) {
      const src = ((outBase + taps[t]) * kk + taps[t + 2]) * cin;
      const dst = (inBase + taps[t + 1]) * cin;
      for (let ci = 0; ci < cin; ci++) dx[dst + ci] += cols[src + ci];
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
    const { cin: c, taps } = g;
    const y = new Float32Array(g.n * g.ho * g.wo * c);
    for (let n = 0; n < g.n; n++) {
      const outBase = n * g.ho * g.wo;
      const inBase = n * g.h * g.w;
      for (let t = 0; t < taps.length; t += 3) {
        const yo = (outBase + taps[t]) * c;
        const xo = (inBase + taps[t + 1]) * c;
        const wo = taps[t + 2] * c;
        for (let ch = 0; ch < c; ch++) y[yo + ch] += x[xo + ch] * w[wo + ch];
      }
    }
    return y;
  },
  backward(x, w, dy, g) {
    const { cin: c, taps } = g;
    const dx = new Float32Array(x.length);
    const dw = new Float32Array(w.length);
    for (let n = 0; n < g.n; n++) {
      const outBase = n * g.ho * g.wo;
      const inBase = n * g.h * g.w;
      for (let t = 0; t < taps.length; t += 3) {
        const yo = (outBase + taps[t]) * c;
        const xo = (inBase + taps[t + 1]) * c;
        const wo = taps[t + 2] * c;
        for (let ch = 0; ch < c; ch++) {
          const d = dy[yo + ch];
          dw[wo + ch] += d * x[xo + ch];
          dx[xo + ch] += d * w[wo + ch];
        }
      }
    }
    return [dx, dw];
  },
};

/** k x k convolution (HWIO weight) with symmetric padding, as plain loops. */
export function jsConv(x: tf.Tensor4D, weight: tf.Tensor4D, stride: number): tf.Tensor4D {
  return convOp(FULL_CONV, x, weight, stride);
}

/** Depthwise k x k convolution (weight [k, k, C, 1]) with symmetric padding, as plain loops. */
export function jsDepthwiseConv(x: tf.Tensor4D, weight: tf.Tensor4D, stride: number): tf.Tensor4D {
  return convOp(DEPTHWISE_CONV, x, weight, stride);
}

function convOp(kernels: ConvKernels, x: tf.Tensor4D, weight: tf.Tensor4D, stride: number): tf.Tensor4D {
  const [n, h, w, cin] = x.shape;
  const [k, k2, wIn, wOut] = weight.shape;
  if (k !== k2 || wIn !== cin || (kernels.depthwise && wOut !== 1)) {
    throw new Error(`${WHERE}: conv weight [${weight.shape.join(", ")}] does not fit input [${x.shape.join(", ")}]`);
  }
  const pad = symmetricPad(k);
  const ho = convOutputSize(h, k, stride);
  const wo = convOutputSize(w, k, stride);
  const g: ConvGeometry = { n, h, w, cin, cout: kernels.depthwise ? cin : wOut, k, ho, wo, taps: insideTaps(h, w, k, stride, pad, ho, wo) };
  return jsOp([x, weight], [n, ho, wo, g.cout], ([xv, wv]) => ({
    y: kernels.forward(xv, wv, g),
    backward: (dy) => kernels.backward(xv, wv, dy, g),
  })) as tf.Tensor4D;
}
