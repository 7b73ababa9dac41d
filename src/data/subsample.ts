// The imbalance sweep's data: the positives of a split subsampled to a target positive rate, every
// negative kept, the file order kept. Which positives stay depends only on the base seed and the
// split: one seeded order of the split's positives, of which a rate keeps the first k. The subset
// is therefore the same for every arm and trial of a rate, and a lower rate keeps a subset of a
// higher rate's positives (the sweep varies p, not which images are seen). The rates reached are
// measured by the caller from the labels that remain.
import { SWEEP } from "../config";
import { makeRng } from "../rng";
import { DataError, IMAGE_BYTES, LabelledImages } from "./cifar10";

/** What subsampling one split kept. */
export interface RateSubset {
  /** Indices into the split, ascending (file order). */
  keep: Int32Array;
  positives: number;
  negatives: number;
  /** Positives and images before subsampling. */
  ownPositives: number;
  ownImages: number;
}

/** Positives that, beside `negatives` negatives, make the rate closest to `rate`: round(negatives r / (1 - r)). */
export function positivesForRate(negatives: number, rate: number): number {
  return Math.round((negatives * rate) / (1 - rate));
}

/**
 * The indices of `labels` (0/1) to keep for positive rate `rate`: every negative and the first k
 * positives of makeRng(seed, "subsample", split)'s order of them. A split whose own rate is at or
 * below the target keeps every image; a target more than SWEEP.rateTolerance above it is a
 * DataError (positives can only be dropped).
 */
export function subsampleToRate(labels: ArrayLike<number>, rate: number, seed: number, split: "train" | "test"): RateSubset {
  const positiveIndices: number[] = [];
  for (let i = 0; i < labels.length; i++) if (labels[i] === 1) positiveIndices.push(i);
  const negatives = labels.length - positiveIndices.length;
  const ownRate = positiveIndices.length / labels.length;
  if (rate > ownRate * (1 + SWEEP.rateTolerance)) {
    throw new DataError(`data.targetPositiveRate: ${rate} is above the ${split} set's own positive rate ${ownRate.toFixed(4)} ` +
      `(${positiveIndices.length} of ${labels.length} images); positives can only be dropped, never added: use a rate of at most ${ownRate.toFixed(4)}`);
  }
  const k = Math.min(positiveIndices.length, positivesForRate(negatives, rate));
  const kept = new Set(makeRng(seed, "subsample", split).shuffle([...positiveIndices]).slice(0, k));
  const keep = new Int32Array(negatives + k);
  let at = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] !== 1 || kept.has(i)) keep[at++] = i;
  return { keep, positives: k, negatives, ownPositives: positiveIndices.length, ownImages: labels.length };
}

/** The images and labels at `keep`, in that order. */
export function selectImages(data: LabelledImages, keep: ArrayLike<number>): LabelledImages {
  const images = new Uint8Array(keep.length * IMAGE_BYTES);
  const labels = new Uint8Array(keep.length);
  for (let j = 0; j < keep.length; j++) {
    const i = keep[j];
    images.set(data.images.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES), j * IMAGE_BYTES);
    labels[j] = data.labels[i];
  }
  return { images, labels, n: keep.length, files: data.files };
}
