// Tensors the kernel and model tests build and compare: seeded normal draws (the same values in every
// run and process), the largest difference of two tensors relative to the second one's scale, and the
// largest value and difference of plain arrays.
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { makeRng } from "../../src/rng";

/** shift + scale * N(0, 1) per value, drawn from makeRng(stream, seed). */
export function seededTensor(stream: string, shape: number[], seed: number, scale = 1, shift = 0): tf.Tensor {
  const rng = makeRng(stream, seed);
  return tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => shift + scale * rng.normal()), shape);
}

/** Max |a - b| relative to max |b|. */
export function relDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] / Math.max(1e-30, tf.max(tf.abs(b)).dataSync()[0]));
}

/** Max |a[i]|. */
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Max |a[i] - b[i]|; a and b must have the same length. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "same number of values");
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
