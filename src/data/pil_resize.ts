// Pillow's bilinear resize, value for value. torchvision's Resize runs on PIL images in the
// reference, and Pillow (Resample.c) does a horizontal pass then a vertical pass, each stored as
// uint8; every output is a weighted sum of a few inputs with the filter weights quantized to
// 22-bit fixed point and rounded half up: (sum(pixel * k) + 2^21) >> 22. Float bilinear
// interpolation lands on the other side of .5 for about 1% of values (the quantized weights push
// many exact halves down), so the fixed-point sums are computed exactly here, both on the host
// (plain JS, exact in doubles) and on the TF.js device (float32, exact through 11-bit weight halves).
import * as tf from "@tensorflow/tfjs";

const PRECISION_BITS = 22;
const HALF_BITS = 11;
const ROUND_HALF_UP = 2 ** (PRECISION_BITS - 1);

/** Output j of a pass reads input index[t][j] with integer weight k[t][j], for each tap t. */
interface PassTaps {
  index: Int32Array[];
  k: Float64Array[];
}

const tapCache = new Map<string, PassTaps>();

/**
 * Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear filter, for `count` outputs
 * starting at `first` of an axis resized from inSize to outSize. Downscaling widens the filter
 * (Pillow's antialiasing); outputs with fewer taps than the widest get weight 0 on the extras.
 */
function pilTaps(inSize: number, outSize: number, first: number, count: number): PassTaps {
  const key = `${inSize}:${outSize}:${first}:${count}`;
  const cached = tapCache.get(key);
  if (cached) return cached;
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 1 * filterScale; // the triangle filter has support 1
  const outputs: Array<{ xmin: number; k: number[] }> = [];
  for (let j = 0; j < count; j++) {
    const center = (first + j + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
    const weights: number[] = [];
    for (let x = xmin; x < xmax; x++) weights.push(Math.max(0, 1 - Math.abs((x - center + 0.5) / filterScale)));
    const total = weights.reduce((a, b) => a + b, 0);
    outputs.push({ xmin, k: weights.map((w) => Math.trunc(0.5 + (total !== 0 ? w / total : 0) * 2 ** PRECISION_BITS)) });
  }
  const width = Math.max(...outputs.map((o) => o.k.length));
  const taps: PassTaps = { index: [], k: [] };
  for (let t = 0; t < width; t++) {
    taps.index.push(Int32Array.from(outputs, (o) => Math.min(o.xmin + t, inSize - 1)));
    taps.k.push(Float64Array.from(outputs, (o) => o.k[t] ?? 0));
  }
  tapCache.set(key, taps);
  return taps;
}

/** Where the crop sits in the resized image; only the cropped outputs are ever computed. */
export interface ResizeCrop {
  size: number;
  crop: number;
  offset: number;
}

/**
 * One pass on the host over an array laid out as [outer, length, inner] along the resized axis;
 * returns [outer, count, inner]. Products and sums stay below 2^53, so doubles are exact.
 */
function hostPass(src: Float32Array, outer: number, length: number, inner: number, taps: PassTaps, count: number): Float32Array {
  const out = new Float32Array(outer * count * inner);
  const scale = 2 ** PRECISION_BITS;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < count; j++) {
      const dst = (o * count + j) * inner;
      for (let i = 0; i < inner; i++) {
        let sum = ROUND_HALF_UP;
        for (let t = 0; t < taps.index.length; t++) sum += src[(o * length + taps.index[t][j]) * inner + i] * taps.k[t][j];
        const v = Math.floor(sum / scale);
        out[dst + i] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
  return out;
}

/** NHWC [n, h, w, 3] uint8 values -> the [n, crop, crop, 3] centre crop of PIL's size x size resize. */
export function resizeCropOnHost(pixels: Float32Array, n: number, h: number, w: number, r: ResizeCrop): Float32Array {
  const horizontal = hostPass(pixels, n * h, w, 3, pilTaps(w, r.size, r.offset, r.crop), r.crop);
  return hostPass(horizontal, n, h, r.crop * 3, pilTaps(h, r.size, r.offset, r.crop), r.crop);
}

/**
 * One pass on the device along `axis` (1: height, 2: width). float32 holds integers exactly only
 * below 2^24, so each weight is split into 11-bit halves: every product and partial sum stays
 * below 2^24, and the halves are recombined with integer-exact steps.
 */
function devicePass(x: tf.Tensor4D, axis: 1 | 2, r: ResizeCrop): tf.Tensor4D {
  const taps = pilTaps(x.shape[axis], r.size, r.offset, r.crop);
  const weightShape: [number, number, number, number] = axis === 1 ? [1, r.crop, 1, 1] : [1, 1, r.crop, 1];
  let sumHigh: tf.Tensor4D | null = null;
  let sumLow: tf.Tensor4D | null = null;
  for (let t = 0; t < taps.index.length; t++) {
    const input = tf.gather(x, tf.tensor1d(taps.index[t], "int32"), axis);
    const k = taps.k[t];
    const high = tf.mul(input, tf.tensor4d(Float32Array.from(k, (v) => Math.floor(v / 2 ** HALF_BITS)), weightShape)) as tf.Tensor4D;
    const low = tf.mul(input, tf.tensor4d(Float32Array.from(k, (v) => v % 2 ** HALF_BITS), weightShape)) as tf.Tensor4D;
    sumHigh = sumHigh ? (tf.add(sumHigh, high) as tf.Tensor4D) : high;
    sumLow = sumLow ? (tf.add(sumLow, low) as tf.Tensor4D) : low;
  }
  if (!sumHigh || !sumLow) throw new Error(`resize to ${r.size}: no filter taps`);
  // sum = sumHigh * 2^11 + sumLow; out = (sum + 2^21) >> 22, without forming sum (it exceeds 2^24).
  const q = tf.floor(tf.div(sumHigh, 2 ** HALF_BITS));
  const rest = tf.add(tf.add(tf.mul(tf.sub(sumHigh, tf.mul(q, 2 ** HALF_BITS)), 2 ** HALF_BITS), sumLow), ROUND_HALF_UP);
  return tf.clipByValue(tf.add(q, tf.floor(tf.div(rest, 2 ** PRECISION_BITS))), 0, 255) as tf.Tensor4D;
}

/** The device version of resizeCropOnHost (same values); call inside tf.tidy. */
export function resizeCropOnDevice(x: tf.Tensor4D, r: ResizeCrop): tf.Tensor4D {
  return devicePass(devicePass(x, 2, r), 1, r);
}
