// The CIFAR-10 binary parser, the synthetic stand-in, the binary task and prepareData, on files
// generated under os.tmpdir().
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  BATCH_DIR_NAME, BATCH_FILES, CLASS_NAMES, DataError, META_FILE, RECORD_BYTES, TEST_BATCH_FILE, TRAIN_BATCH_FILES,
  batchDirProblem, encodeBatch, loadCifar10, readBatchFile,
} from "../src/data/cifar10";
import { SYNTHETIC_MARKER, ensureSynthetic, isSynthetic, writeSyntheticCifar10 } from "../src/data/synthetic";
import { positiveRate, resolvePositiveClass, toBinaryLabels } from "../src/data/task";
import { prepareData, resolveDataSource } from "../src/data/prepare";
import { imageToRgbBytes } from "../src/data/preprocess";
import { ConfigError, ExperimentConfig } from "../src/config";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "bias-data-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let counter = 0;
const freshDir = (): string => {
  const dir = path.join(root, `case-${counter++}`);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
};

/** A pixel value that differs per channel, row and column, so plane or axis mix-ups show. */
const pixel = (record: number, c: number, y: number, x: number): number => (record * 17 + c * 100 + y * 3 + x) % 256;

/** A batch file written byte by byte from the format's definition (not with encodeBatch). */
function writeHandMadeBatch(file: string, labels: number[]): void {
  const bytes: number[] = [];
  labels.forEach((label, r) => {
    bytes.push(label);
    for (let c = 0; c < 3; c++) for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) bytes.push(pixel(r, c, y, x));
  });
  fs.writeFileSync(file, Buffer.from(bytes));
}

/** A complete batch folder with the given labels in every file (images: zeros). */
function writeBatchDir(dir: string, labels: number[]): string {
  const batchDir = path.join(dir, BATCH_DIR_NAME);
  fs.mkdirSync(batchDir, { recursive: true });
  const images = new Uint8Array(labels.length * 3072);
  for (const name of BATCH_FILES) fs.writeFileSync(path.join(batchDir, name), encodeBatch(images, Uint8Array.from(labels)));
  return batchDir;
}

const dataConfig = (dir: string, overrides: Partial<ExperimentConfig["data"]> = {}): ExperimentConfig["data"] =>
  ({ source: "auto", dir, positiveClass: "frog", trainLimit: null, testLimit: null, targetPositiveRate: null, ...overrides });

/** Mann-Whitney AUC of a score against 0/1 labels (ties count half). */
function auc(labels: Float32Array, score: number[]): number {
  let wins = 0;
  let pairs = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== 1) continue;
    for (let j = 0; j < labels.length; j++) {
      if (labels[j] !== 0) continue;
      pairs++;
      wins += score[i] > score[j] ? 1 : score[i] === score[j] ? 0.5 : 0;
    }
  }
  return wins / pairs;
}

describe("readBatchFile", () => {
  test("reads labels and pixels exactly as stored: R plane, G plane, B plane, row-major", () => {
    const file = path.join(freshDir(), "data_batch_1.bin");
    writeHandMadeBatch(file, [3, 9, 0]);
    const got = readBatchFile(file);
    assert.equal(got.n, 3);
    assert.deepEqual(Array.from(got.labels), [3, 9, 0]);
    assert.deepEqual(got.files, [file]);
    assert.equal(got.images.length, 3 * 3072);
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < 3; c++) {
        for (const [y, x] of [[0, 0], [0, 31], [5, 7], [31, 0], [31, 31]]) {
          assert.equal(got.images[r * 3072 + c * 1024 + y * 32 + x], pixel(r, c, y, x), `record ${r} channel ${c} (${y},${x})`);
        }
      }
    }
    // Record 1, pixel (y=2, x=5): R = 17+6+5 = 28, G = 128, B = 228.
    const rgb = imageToRgbBytes(got.images, 1);
    const at = (2 * 32 + 5) * 3;
    assert.deepEqual(Array.from(rgb.subarray(at, at + 3)), [28, 128, 228]);
  });

  test("encodeBatch writes the same bytes as the hand-made file", () => {
    const file = path.join(freshDir(), "b.bin");
    writeHandMadeBatch(file, [1, 2]);
    const parsed = readBatchFile(file);
    assert.ok(encodeBatch(parsed.images, parsed.labels).equals(fs.readFileSync(file)));
  });

  test("a limit reads only the first records", () => {
    const file = path.join(freshDir(), "b.bin");
    writeHandMadeBatch(file, [4, 5, 6, 7]);
    const got = readBatchFile(file, 2);
    assert.equal(got.n, 2);
    assert.deepEqual(Array.from(got.labels), [4, 5]);
    assert.equal(got.images[3072 + 1024], pixel(1, 1, 0, 0));
  });

  test("a truncated file is rejected with its name and size", () => {
    const file = path.join(freshDir(), "data_batch_2.bin");
    writeHandMadeBatch(file, [1, 2]);
    fs.truncateSync(file, 2 * RECORD_BYTES - 5);
    assert.throws(() => readBatchFile(file), (e: Error) =>
      e instanceof DataError && e.message.includes(file) && e.message.includes(`${2 * RECORD_BYTES - 5} bytes`) && e.message.includes("truncated"));
    // The size is checked even when the limit would not reach the missing bytes.
    assert.throws(() => readBatchFile(file, 1), DataError);
  });

  test("an empty file is rejected", () => {
    const file = path.join(freshDir(), "test_batch.bin");
    fs.writeFileSync(file, Buffer.alloc(0));
    assert.throws(() => readBatchFile(file), (e: Error) => e instanceof DataError && e.message.includes("0 bytes"));
  });

  test("a label outside 0..9 names the record and the value", () => {
    const file = path.join(freshDir(), "data_batch_1.bin");
    writeHandMadeBatch(file, [0, 10, 2]);
    assert.throws(() => readBatchFile(file), (e: Error) =>
      e instanceof DataError && e.message.includes(file) && e.message.includes("record 1 has label 10"));
  });

  test("a missing file is named", () => {
    const file = path.join(freshDir(), "nope.bin");
    assert.throws(() => readBatchFile(file), (e: Error) => e instanceof DataError && e.message.includes(file) && e.message.includes("missing"));
  });
});

describe("loadCifar10", () => {
  test("train comes from data_batch_1..5 in order, limits cut across files", () => {
    const dir = freshDir();
    const batchDir = path.join(dir, BATCH_DIR_NAME);
    fs.mkdirSync(batchDir);
    // Each train file has 3 records labelled with its file number; the test file is labelled 9.
    TRAIN_BATCH_FILES.forEach((name, f) => writeHandMadeBatch(path.join(batchDir, name), [f, f, f]));
    writeHandMadeBatch(path.join(batchDir, TEST_BATCH_FILE), [9, 9, 9, 9]);
    const all = loadCifar10(batchDir, { trainLimit: null, testLimit: null });
    assert.equal(all.train.n, 15);
    assert.deepEqual(Array.from(all.train.labels), [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]);
    assert.equal(all.test.n, 4);
    const some = loadCifar10(batchDir, { trainLimit: 5, testLimit: 2 });
    assert.deepEqual(Array.from(some.train.labels), [0, 0, 0, 1, 1]);
    assert.deepEqual(some.train.files.map((f) => path.basename(f)), ["data_batch_1.bin", "data_batch_2.bin"]);
    assert.equal(some.test.n, 2);
    // Image bytes follow their records across the file boundary: record 3 is file 2's record 0.
    assert.equal(some.train.images[3 * 3072 + 1024 + 32], pixel(0, 1, 1, 0));
  });

  test("a limit inside data_batch_1 does not read past it (a bad label later is not reached)", () => {
    const dir = freshDir();
    const batchDir = path.join(dir, BATCH_DIR_NAME);
    fs.mkdirSync(batchDir);
    for (const name of BATCH_FILES) writeHandMadeBatch(path.join(batchDir, name), [1, 2, 3, 11]);
    const some = loadCifar10(batchDir, { trainLimit: 3, testLimit: 3 });
    assert.deepEqual(some.train.files.map((f) => path.basename(f)), ["data_batch_1.bin"]);
    assert.throws(() => loadCifar10(batchDir, { trainLimit: 4, testLimit: 3 }), /record 3 has label 11/);
  });

  test("a missing folder says how to get the data", () => {
    const missing = path.join(freshDir(), BATCH_DIR_NAME);
    assert.throws(() => loadCifar10(missing, { trainLimit: null, testLimit: null }), (e: Error) =>
      e instanceof DataError && e.message.includes(missing) && e.message.includes("make data") && e.message.includes("--local"));
  });

  test("a missing batch file is named", () => {
    const batchDir = writeBatchDir(freshDir(), [0, 6]);
    fs.rmSync(path.join(batchDir, "data_batch_3.bin"));
    assert.match(batchDirProblem(batchDir) ?? "", /data_batch_3\.bin is missing/);
    assert.throws(() => loadCifar10(batchDir, { trainLimit: null, testLimit: null }), (e: Error) =>
      e instanceof DataError && e.message.includes(path.join(batchDir, "data_batch_3.bin")));
  });
});

describe("synthetic CIFAR-10", () => {
  const opts = { perTrainBatch: 200, testCount: 100, seed: 1 };

  test("official names, sizes n*3073, exactly 10% frog per file, the rest uniform", () => {
    const dir = freshDir();
    const batchDir = writeSyntheticCifar10(dir, opts);
    assert.equal(batchDir, path.join(dir, BATCH_DIR_NAME));
    assert.deepEqual(fs.readdirSync(batchDir).sort(), [...BATCH_FILES, META_FILE, SYNTHETIC_MARKER].sort());
    assert.equal(batchDirProblem(batchDir), null);
    for (const name of BATCH_FILES) {
      const n = name === TEST_BATCH_FILE ? 100 : 200;
      assert.equal(fs.statSync(path.join(batchDir, name)).size, n * 3073, name);
      const { labels } = readBatchFile(path.join(batchDir, name));
      const counts = new Array(10).fill(0);
      labels.forEach((l) => counts[l]++);
      assert.equal(counts[6], n / 10, `${name}: frogs`);
      for (let c = 0; c < 10; c++) if (c !== 6) assert.equal(counts[c], n / 10, `${name}: class ${c}`);
    }
    assert.deepEqual(fs.readFileSync(path.join(batchDir, META_FILE), "utf8").trim().split("\n"), [...CLASS_NAMES]);
    assert.match(fs.readFileSync(path.join(dir, SYNTHETIC_MARKER), "utf8"), /SYNTHETIC/);
    assert.ok(isSynthetic(dir));
    assert.ok(isSynthetic(batchDir));
    assert.ok(!isSynthetic(freshDir()));
  });

  test("deterministic given the seed, different across seeds", () => {
    const a = writeSyntheticCifar10(freshDir(), opts);
    const b = writeSyntheticCifar10(freshDir(), opts);
    const c = writeSyntheticCifar10(freshDir(), { ...opts, seed: 2 });
    for (const name of BATCH_FILES) {
      assert.ok(fs.readFileSync(path.join(a, name)).equals(fs.readFileSync(path.join(b, name))), name);
      assert.ok(!fs.readFileSync(path.join(a, name)).equals(fs.readFileSync(path.join(c, name))), name);
    }
  });

  test("frog has class structure: greenness alone ranks frogs above the rest, but not perfectly", () => {
    const batchDir = writeSyntheticCifar10(freshDir(), opts);
    const { images, labels, n } = readBatchFile(path.join(batchDir, TEST_BATCH_FILE));
    const greenness: number[] = [];
    for (let i = 0; i < n; i++) {
      let g = 0;
      let rb = 0;
      for (let p = 0; p < 1024; p++) {
        g += images[i * 3072 + 1024 + p];
        rb += (images[i * 3072 + p] + images[i * 3072 + 2048 + p]) / 2;
      }
      greenness.push(g - rb);
    }
    const a = auc(toBinaryLabels(labels, 6), greenness);
    assert.ok(a > 0.75 && a < 0.999, `AUC of greenness for frog: ${a}`);
  });

  test("ensureSynthetic generates once, atomically, and regenerates for other parameters", () => {
    const dataDir = freshDir();
    const batchDir = ensureSynthetic(dataDir, opts);
    assert.equal(batchDir, path.join(dataDir, "synthetic", BATCH_DIR_NAME));
    const file = path.join(batchDir, "data_batch_1.bin");
    const before = fs.statSync(file);
    assert.equal(ensureSynthetic(dataDir, opts), batchDir);
    assert.equal(fs.statSync(file).mtimeMs, before.mtimeMs, "second call rewrote the files");
    assert.deepEqual(fs.readdirSync(dataDir), ["synthetic"], "temporary folders left behind");
    ensureSynthetic(dataDir, { ...opts, perTrainBatch: 100 });
    assert.equal(fs.statSync(file).size, 100 * 3073);
    assert.deepEqual(fs.readdirSync(dataDir), ["synthetic"]);
  });
});

describe("binary task", () => {
  test("resolvePositiveClass by name, index and index text", () => {
    assert.deepEqual(resolvePositiveClass("frog"), { index: 6, name: "frog" });
    assert.deepEqual(resolvePositiveClass(" Truck "), { index: 9, name: "truck" });
    assert.deepEqual(resolvePositiveClass(0), { index: 0, name: "airplane" });
    assert.deepEqual(resolvePositiveClass("6"), { index: 6, name: "frog" });
  });

  test("unknown names and out-of-range indices are rejected with the valid names", () => {
    assert.throws(() => resolvePositiveClass("frogs"), (e: Error) =>
      e instanceof ConfigError && e.message.includes('"frogs"') && e.message.includes("airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck"));
    assert.throws(() => resolvePositiveClass(10), (e: Error) => e instanceof ConfigError && e.message.includes("10 is outside 0..9"));
    assert.throws(() => resolvePositiveClass(-1), ConfigError);
    assert.throws(() => resolvePositiveClass(1.5), ConfigError);
  });

  test("binary labels and the measured positive rate", () => {
    const binary = toBinaryLabels(Uint8Array.from([6, 0, 6, 9, 1, 6, 2, 3]), 6);
    assert.deepEqual(Array.from(binary), [1, 0, 1, 0, 0, 1, 0, 0]);
    assert.equal(positiveRate(binary), 3 / 8);
    assert.equal(positiveRate(toBinaryLabels(Uint8Array.from([1, 2, 3]), 6)), 0);
    assert.throws(() => positiveRate(new Float32Array(0)), /no labels/);
  });
});

describe("prepareData", () => {
  const synthetic = { perTrainBatch: 100, testCount: 50, seed: 3 };

  test("auto without CIFAR-10 falls back to the synthetic set and says so", () => {
    const dir = freshDir();
    const data = prepareData(dataConfig(dir), { synthetic });
    assert.equal(data.dataset, "synthetic");
    assert.equal(data.dir, path.join(dir, "synthetic", BATCH_DIR_NAME));
    assert.match(data.note, /CIFAR-10 not found in .*run `make data`.*SYNTHETIC/);
    assert.equal(data.train.n, 500);
    assert.equal(data.test.n, 50);
    assert.deepEqual(data.positive, { index: 6, name: "frog" });
    assert.equal(data.positiveRate, 0.1); // exactly 10 frogs in each 100-record file
    assert.equal(data.trainLabels.length, 500);
    assert.equal(data.testLabels.reduce((s, v) => s + v, 0), 5);
  });

  test("the positive rate is measured on the training labels actually loaded", () => {
    const dir = freshDir();
    const data = prepareData(dataConfig(dir, { source: "synthetic", trainLimit: 37, positiveClass: 2 }), { synthetic });
    const firstLabels = readBatchFile(path.join(data.dir, "data_batch_1.bin"), 37).labels;
    const expected = firstLabels.filter((l) => l === 2).length / 37;
    assert.equal(data.positiveRate, expected);
    assert.equal(data.positive.name, "bird");
    assert.match(data.note, /SYNTHETIC/);
  });

  test("auto uses a complete CIFAR-10 folder; cifar10 without one is an error that says what to run", () => {
    const dir = freshDir();
    assert.throws(() => prepareData(dataConfig(dir, { source: "cifar10" })), (e: Error) =>
      e instanceof DataError && e.message.includes("make data") && e.message.includes(path.join(dir, BATCH_DIR_NAME)));
    writeBatchDir(dir, [6, 1, 2, 3]);
    const data = prepareData(dataConfig(dir));
    assert.equal(data.dataset, "cifar10");
    assert.equal(data.positiveRate, 0.25);
    assert.match(data.note, /^CIFAR-10 from/);
  });

  test("resolveDataSource decides without loading: auto is cifar10 only for a complete, real folder", () => {
    const dir = freshDir();
    assert.equal(resolveDataSource(dataConfig(dir)), "synthetic");
    assert.equal(resolveDataSource(dataConfig(dir, { source: "cifar10" })), "cifar10");
    assert.deepEqual(fs.readdirSync(dir), [], "resolving generated or loaded something");
    const batchDir = writeBatchDir(dir, [6, 1, 2, 3]);
    assert.equal(resolveDataSource(dataConfig(dir)), "cifar10");
    assert.equal(resolveDataSource(dataConfig(dir, { source: "synthetic" })), "synthetic");
    fs.writeFileSync(path.join(batchDir, SYNTHETIC_MARKER), "copied synthetic set");
    assert.equal(resolveDataSource(dataConfig(dir)), "synthetic");
    fs.truncateSync(path.join(batchDir, "test_batch.bin"), 100);
    fs.rmSync(path.join(batchDir, SYNTHETIC_MARKER));
    assert.equal(resolveDataSource(dataConfig(dir)), "synthetic");
    const data = prepareData(dataConfig(dir), { synthetic });
    assert.equal(data.dataset, "synthetic");
    assert.match(data.note, /incomplete .*test_batch\.bin: 100 bytes/);
  });

  test("a limit above what exists is reported in the note", () => {
    const dir = freshDir();
    writeBatchDir(dir, [6, 1, 2, 3]);
    const data = prepareData(dataConfig(dir, { trainLimit: 100 }));
    assert.equal(data.train.n, 20);
    assert.match(data.note, /train limit 100, only 20 available/);
  });

  test("training labels of a single class are rejected", () => {
    const dir = freshDir();
    writeBatchDir(dir, [1, 2, 3, 4]);
    assert.throws(() => prepareData(dataConfig(dir)), (e: Error) =>
      e instanceof DataError && e.message.includes("all negative") && e.message.includes('"frog"'));
  });
});
