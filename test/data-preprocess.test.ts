// Preprocessing (torchvision/PIL parity with reference numbers computed by Pillow 12.3 and
// torchvision 0.28), seeded batch order, and device batches that leak no tensors.
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { DataError, LabelledImages } from "../src/data/cifar10";
import { IMAGENET_MEAN, IMAGENET_STD, PreprocessOn, centreCropOffset, preprocessImages, pythonRound } from "../src/data/preprocess";
import { ImageDataset, batchRanges, epochOrder } from "../src/data/batches";

before(async () => {
  await tf.setBackend("cpu");
});

/** Images in the file layout (CHW planes) from a per-pixel formula. */
function makeImages(n: number, value: (i: number, c: number, y: number, x: number) => number): Uint8Array {
  const images = new Uint8Array(n * 3072);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) {
    images[i * 3072 + c * 1024 + y * 32 + x] = value(i, c, y, x);
  }
  return images;
}

// The reference image. Its expected numbers below were computed once in Python with Pillow 12.3:
//   img = Image.fromarray(hwc_uint8, "RGB"); a = np.asarray(img.resize((s, s), Image.BILINEAR))[o:o+c, o:o+c]
// and, for the normalized values, torchvision 0.28's Resize(255) + CenterCrop(240) + ToTensor + Normalize.
const formula = (_i: number, c: number, y: number, x: number): number => (x * 37 + y * 91 + c * 53 + x * y * 7) % 256;

/** Back from normalized floats to the uint8 values PIL produced. */
function toBytes(t: tf.Tensor4D): Int32Array {
  const v = t.dataSync();
  return Int32Array.from(v, (z, i) => Math.round((z * IMAGENET_STD[i % 3] + IMAGENET_MEAN[i % 3]) * 255));
}

function channelSums(bytes: Int32Array): number[] {
  const sums = [0, 0, 0];
  bytes.forEach((b, i) => { sums[i % 3] += b; });
  return sums;
}

const at = (bytes: Int32Array, side: number, y: number, x: number): number[] => Array.from(bytes.subarray((y * side + x) * 3, (y * side + x) * 3 + 3));

describe("preprocessImages", () => {
  for (const on of ["host", "device"] as PreprocessOn[]) {
    test(`${on}: resize 255 / crop 240 matches PIL + torchvision exactly on a reference image`, () => {
      const t = preprocessImages(makeImages(1, formula), [0], { resize: 255, crop: 240 }, on);
      assert.deepEqual(t.shape, [1, 240, 240, 3]);
      const bytes = toBytes(t);
      // PIL: img.resize((255, 255), BILINEAR)[8:248, 8:248] (torchvision's Resize(255) + CenterCrop(240)).
      assert.deepEqual(channelSums(bytes), [7359374, 7470285, 7295566]);
      assert.deepEqual(at(bytes, 240, 0, 0), [75, 128, 181]);
      assert.deepEqual(at(bytes, 240, 7, 3), [176, 121, 168]);
      assert.deepEqual(at(bytes, 240, 239, 239), [178, 231, 91]);
      // torchvision's full IMAGENET1K_V2-style transform output at (0, 0) and (5, 7), channels first there.
      const v = t.dataSync();
      const expected: Array<[number, number, number[]]> = [
        [0, 0, [-0.8335474133491516, 0.20518219470977783, 1.350239872932434]],
        [5, 7, [0.4850586950778961, 1.0805323123931885, 0.6182137131690979]],
      ];
      for (const [y, x, values] of expected) {
        values.forEach((e, c) => assert.ok(Math.abs(v[(y * 240 + x) * 3 + c] - e) < 1e-6, `(${y},${x},${c}): ${v[(y * 240 + x) * 3 + c]} vs ${e}`));
      }
      t.dispose();
    });

    test(`${on}: downscaling (PIL's antialiased bilinear) matches PIL: resize 20 / crop 16`, () => {
      const t = preprocessImages(makeImages(1, formula), [0], { resize: 20, crop: 16 }, on);
      assert.deepEqual(t.shape, [1, 16, 16, 3]);
      const bytes = toBytes(t);
      assert.deepEqual(channelSums(bytes), [32267, 33632, 32519]);
      assert.deepEqual(at(bytes, 16, 0, 0), [149, 139, 128]);
      assert.deepEqual(at(bytes, 16, 7, 3), [131, 173, 109]);
      assert.deepEqual(at(bytes, 16, 15, 15), [110, 163, 206]);
      t.dispose();
    });
  }

  test("a constant image stays constant: (v/255 - mean) / std everywhere", () => {
    const rgb = [200, 90, 13];
    const t = preprocessImages(makeImages(1, (_i, c) => rgb[c]), [0], { resize: 255, crop: 240 });
    const v = t.dataSync();
    for (let i = 0; i < v.length; i++) {
      const c = i % 3;
      const expected = (rgb[c] / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
      if (Math.abs(v[i] - expected) > 1e-6) assert.fail(`value ${i}: ${v[i]} vs ${expected}`);
    }
    t.dispose();
  });

  test("native 32x32 path is the direct normalization of each pixel, images in the order asked", () => {
    const images = makeImages(3, (i, c, y, x) => (i * 50 + c * 20 + y * 5 + x) % 256);
    const t = preprocessImages(images, [2, 0], { resize: null, crop: 32 });
    assert.deepEqual(t.shape, [2, 32, 32, 3]);
    const v = t.dataSync();
    const order = [2, 0];
    for (let k = 0; k < 2; k++) for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) for (let c = 0; c < 3; c++) {
      const raw = images[order[k] * 3072 + c * 1024 + y * 32 + x];
      const expected = (raw / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
      const got = v[((k * 32 + y) * 32 + x) * 3 + c];
      if (Math.abs(got - expected) > 1e-6) assert.fail(`image ${k} (${y},${x},${c}): ${got} vs ${expected}`);
    }
    t.dispose();
  });

  test("a native crop takes the centre (offset 2 for 32 -> 28)", () => {
    const images = makeImages(1, (_i, c, y, x) => (c * 80 + y * 2 + x) % 256);
    const bytes = toBytes(preprocessImages(images, [0], { resize: null, crop: 28 }));
    assert.deepEqual(at(bytes, 28, 0, 0), [2 * 2 + 2, 80 + 6, 160 + 6]);
    assert.deepEqual(at(bytes, 28, 27, 27), [29 * 2 + 29, 80 + 87, 160 + 87]);
  });

  test("host and device paths give identical values", () => {
    const images = makeImages(3, (i, c, y, x) => (i * 71 + c * 29 + y * y + 3 * x) % 256);
    for (const opts of [{ resize: null, crop: 32 }, { resize: null, crop: 27 }, { resize: 40, crop: 33 }, { resize: 24, crop: 24 }]) {
      const host = preprocessImages(images, [1, 2, 0], opts, "host");
      const device = preprocessImages(images, [1, 2, 0], opts, "device");
      assert.deepEqual(host.shape, device.shape);
      assert.deepEqual(Array.from(host.dataSync()), Array.from(device.dataSync()), JSON.stringify(opts));
      tf.dispose([host, device]);
    }
  });

  test("centre-crop offsets use Python's round (half to even)", () => {
    assert.equal(centreCropOffset(255, 240), 8); // 7.5 -> 8
    assert.equal(centreCropOffset(35, 30), 2); // 2.5 -> 2
    assert.equal(centreCropOffset(33, 30), 2); // 1.5 -> 2
    assert.equal(centreCropOffset(32, 32), 0);
    assert.deepEqual([0.5, 1.5, 2.5, 3.49, 3.51].map(pythonRound), [0, 2, 2, 3, 4]);
  });

  test("bad crops and indices are rejected", () => {
    const images = makeImages(2, () => 0);
    assert.throws(() => preprocessImages(images, [0], { resize: null, crop: 33 }), DataError);
    assert.throws(() => preprocessImages(images, [0], { resize: 100, crop: 101 }), DataError);
    assert.throws(() => preprocessImages(images, [2], { resize: null, crop: 32 }), /index 2 is outside 0\.\.1/);
  });

  test("no tensors leak", () => {
    const images = makeImages(4, formula);
    const start = tf.memory().numTensors;
    for (const on of ["host", "device"] as PreprocessOn[]) {
      for (const opts of [{ resize: null, crop: 32 }, { resize: null, crop: 24 }, { resize: 64, crop: 56 }]) {
        preprocessImages(images, [0, 1, 3], opts, on).dispose();
      }
    }
    assert.equal(tf.memory().numTensors, start);
  });
});

describe("batching", () => {
  test("epochOrder is a deterministic permutation, different per epoch and seed", () => {
    const a = epochOrder(100, 7, 1);
    assert.ok(a instanceof Int32Array);
    assert.deepEqual(Array.from(a).sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i));
    assert.deepEqual(epochOrder(100, 7, 1), a);
    assert.notDeepEqual(epochOrder(100, 7, 2), a);
    assert.notDeepEqual(epochOrder(100, 8, 1), a);
    assert.notDeepEqual(Array.from(a), Array.from({ length: 100 }, (_, i) => i));
  });

  test("batchRanges covers 0..n with a smaller last batch (drop_last=False)", () => {
    assert.deepEqual(batchRanges(10, 4), [[0, 4], [4, 8], [8, 10]]);
    assert.deepEqual(batchRanges(8, 4), [[0, 4], [4, 8]]);
    assert.deepEqual(batchRanges(3, 64), [[0, 3]]);
    assert.deepEqual(batchRanges(0, 4), []);
    assert.throws(() => batchRanges(10, 0), DataError);
  });

  test("ImageDataset.batch gives the preprocessed images and their labels; disposing restores the tensor count", () => {
    const n = 6;
    const images = makeImages(n, (i, c, y, x) => (i * 31 + c * 7 + y + x) % 256);
    const data: LabelledImages = { images, labels: Uint8Array.from([6, 1, 6, 2, 3, 4]), n, files: [] };
    const labels = Float32Array.from([1, 0, 1, 0, 0, 0]);
    const dataset = new ImageDataset(data, labels, { resize: null, crop: 32 });
    assert.equal(dataset.size, 6);
    const start = tf.memory().numTensors;
    const indices = Int32Array.from([5, 2, 0]);
    const { x, y } = dataset.batch(indices);
    assert.deepEqual(x.shape, [3, 32, 32, 3]);
    assert.deepEqual(Array.from(y.dataSync()), [0, 1, 1]);
    const direct = preprocessImages(images, indices, { resize: null, crop: 32 });
    assert.deepEqual(Array.from(x.dataSync()), Array.from(direct.dataSync()));
    tf.dispose([x, y, direct]);
    assert.equal(tf.memory().numTensors, start);
    assert.throws(() => new ImageDataset(data, new Float32Array(5), { resize: null, crop: 32 }), /5 binary labels for 6 images/);
  });
});
