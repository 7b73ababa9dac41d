// torchvision's IMAGENET1K_V2 eval transform: resize (bilinear, on PIL uint8 images), centre crop,
// ToTensor (/255), Normalize with the ImageNet mean/std, reproduced value for value (see
// pil_resize.ts for the resize). On TF.js's pure-JS "cpu" backend everything runs in plain JS and
// the finished batch is uploaded (its broadcasting ops and gathers are ~100x slower than a loop);
// on other backends the 32x32 images are uploaded and resized on the device.
import * as tf from "@tensorflow/tfjs";
import { DataError, IMAGE_BYTES, IMAGE_SIDE } from "./cifar10";
import { ResizeCrop, resizeCropOnDevice, resizeCropOnHost } from "./pil_resize";

export const IMAGENET_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];

export interface InputTransform {
  /** Resize the (square) image to resize x resize first; null keeps 32x32. */
  resize: number | null;
  /** Centre crop to crop x crop. */
  crop: number;
}

/** "auto": on the host for TF.js's pure-JS cpu backend, else on the device. Both give the same values. */
export type PreprocessOn = "auto" | "host" | "device";

/** Python's round(): halves go to the even neighbour (torchvision's centre-crop offset uses it). */
export function pythonRound(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** torchvision's centre-crop offset: round((size - crop) / 2), e.g. 8 for 255 -> 240. */
export function centreCropOffset(size: number, crop: number): number {
  return pythonRound((size - crop) / 2);
}

/** Selected records as NHWC float32 pixel values 0..255 (the file stores CHW planes). */
function gatherNhwc(images: Uint8Array, indices: ArrayLike<number>): Float32Array {
  const plane = IMAGE_SIDE * IMAGE_SIDE;
  const total = images.length / IMAGE_BYTES;
  const out = new Float32Array(indices.length * IMAGE_BYTES);
  for (let k = 0; k < indices.length; k++) {
    const index = indices[k];
    if (!Number.isInteger(index) || index < 0 || index >= total) {
      throw new DataError(`image index ${index} is outside 0..${total - 1}`);
    }
    const src = index * IMAGE_BYTES;
    const dst = k * IMAGE_BYTES;
    for (let p = 0; p < plane; p++) {
      out[dst + 3 * p] = images[src + p];
      out[dst + 3 * p + 1] = images[src + plane + p];
      out[dst + 3 * p + 2] = images[src + 2 * plane + p];
    }
  }
  return out;
}

/** NHWC [n, side, side, 3] -> its centre crop [n, crop, crop, 3]. */
function cropOnHost(pixels: Float32Array, n: number, side: number, crop: number, offset: number): Float32Array {
  const out = new Float32Array(n * crop * crop * 3);
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < crop; y++) {
      const src = ((b * side + y + offset) * side + offset) * 3;
      out.set(pixels.subarray(src, src + crop * 3), (b * crop + y) * crop * 3);
    }
  }
  return out;
}

/**
 * In place: ToTensor then Normalize, rounding to float32 after each operation exactly as the
 * device ops (and PyTorch's float32 ops) do, so host and device batches are identical.
 */
function normalizeOnHost(values: Float32Array): Float32Array {
  const mean = IMAGENET_MEAN.map(Math.fround);
  const std = IMAGENET_STD.map(Math.fround);
  for (let i = 0; i < values.length; i++) {
    const c = i % 3;
    values[i] = Math.fround(Math.fround(values[i] / 255) - mean[c]) / std[c];
  }
  return values;
}

function checkTransform(opts: InputTransform): number {
  const size = opts.resize ?? IMAGE_SIDE;
  if (!Number.isInteger(size) || size < 1) throw new DataError(`resize ${opts.resize} must be a positive integer or null`);
  if (!Number.isInteger(opts.crop) || opts.crop < 1 || opts.crop > size) {
    throw new DataError(`crop ${opts.crop} must be an integer in 1..${size} (the image side after resizing)`);
  }
  return size;
}

/**
 * The model input for the records at `indices`: NHWC float32, resized and cropped like torchvision,
 * normalized with the ImageNet mean/std. The caller disposes the result; nothing else is kept.
 */
export function preprocessImages(images: Uint8Array, indices: ArrayLike<number>, opts: InputTransform, on: PreprocessOn = "auto"): tf.Tensor4D {
  const size = checkTransform(opts);
  const n = indices.length;
  const pixels = gatherNhwc(images, indices);
  const r: ResizeCrop = { size, crop: opts.crop, offset: centreCropOffset(size, opts.crop) };
  // PIL returns a copy when the size does not change, so 32 -> 32 is no resize at all.
  const resizes = size !== IMAGE_SIDE;
  if (on === "host" || (on === "auto" && tf.getBackend() === "cpu")) {
    const cropped = resizes ? resizeCropOnHost(pixels, n, IMAGE_SIDE, IMAGE_SIDE, r)
      : r.crop === IMAGE_SIDE ? pixels : cropOnHost(pixels, n, IMAGE_SIDE, r.crop, r.offset);
    return tf.tensor4d(normalizeOnHost(cropped), [n, r.crop, r.crop, 3]);
  }
  return tf.tidy(() => {
    let x: tf.Tensor4D = tf.tensor4d(pixels, [n, IMAGE_SIDE, IMAGE_SIDE, 3]);
    if (resizes) x = resizeCropOnDevice(x, r);
    else if (r.crop !== IMAGE_SIDE) x = tf.slice(x, [0, r.offset, r.offset, 0], [n, r.crop, r.crop, 3]);
    const mean = tf.tensor1d([...IMAGENET_MEAN]);
    const std = tf.tensor1d([...IMAGENET_STD]);
    return tf.div(tf.sub(tf.div(x, 255), mean), std) as tf.Tensor4D;
  });
}

/** One record as HWC RGB bytes (e.g. to draw it in a notebook). */
export function imageToRgbBytes(images: Uint8Array, index: number): Uint8Array {
  const total = images.length / IMAGE_BYTES;
  if (!Number.isInteger(index) || index < 0 || index >= total) throw new DataError(`image index ${index} is outside 0..${total - 1}`);
  return Uint8Array.from(gatherNhwc(images, [index]));
}
