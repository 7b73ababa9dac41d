// Seeded batching. The order of an epoch depends only on (seed, epoch), so a run resumed at epoch k
// replays exactly the batches an uninterrupted run would have seen; both arms of a trial share it.
import * as tf from "@tensorflow/tfjs";
import { makeRng } from "../rng";
import { DataError, LabelledImages } from "./cifar10";
import { InputTransform, preprocessImages } from "./preprocess";

/** A permutation of 0..n-1 for this epoch, from makeRng(seed, "order", epoch). */
export function epochOrder(n: number, seed: number, epoch: number): Int32Array {
  const order = Array.from({ length: n }, (_, i) => i);
  return Int32Array.from(makeRng(seed, "order", epoch).shuffle(order));
}

/** [start, end) of consecutive batches; the last one may be smaller (PyTorch's drop_last=False). */
export function batchRanges(n: number, batchSize: number): Array<[number, number]> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new DataError(`batch size ${batchSize} must be a positive integer`);
  const ranges: Array<[number, number]> = [];
  for (let start = 0; start < n; start += batchSize) ranges.push([start, Math.min(start + batchSize, n)]);
  return ranges;
}

/** Images on the host, with their 0/1 labels, turned into device batches on demand. */
export class ImageDataset {
  readonly size: number;

  constructor(readonly data: LabelledImages, readonly labels: Float32Array, readonly transform: InputTransform) {
    if (labels.length !== data.n) throw new DataError(`${labels.length} binary labels for ${data.n} images`);
    this.size = data.n;
  }

  /** x: NHWC float32 model input; y: 0/1 labels. The caller disposes both. */
  batch(indices: ArrayLike<number>): { x: tf.Tensor4D; y: tf.Tensor1D } {
    const x = preprocessImages(this.data.images, indices, this.transform);
    const y = tf.tensor1d(Float32Array.from({ length: indices.length }, (_, k) => this.labels[indices[k]]));
    return { x, y };
  }
}
