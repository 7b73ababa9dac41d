// A generated stand-in for CIFAR-10 in the official binary layout, for machines without the real
// data (tests, CI, a first look). Every class has its own colours, shape and texture plus noise, and
// the frog class (a green blob texture) is easy to tell apart, so a tiny CNN learns within a couple
// of epochs. Results on it say nothing about CIFAR-10: everything built from it is labelled synthetic.
import * as fs from "fs";
import * as path from "path";
import { makeRng, Rng } from "../rng";
import { leftoverTag } from "../util/leftovers";
import {
  BATCH_DIR_NAME, CLASS_NAMES, DataError, IMAGE_BYTES, IMAGE_SIDE, META_FILE, TEST_BATCH_FILE,
  TRAIN_BATCH_FILES, batchDirProblem, encodeBatch,
} from "./cifar10";

export const SYNTHETIC_MARKER = "SYNTHETIC.txt";
/** Bump when the images change, so that ensureSynthetic regenerates stale folders. */
export const SYNTHETIC_GENERATOR_VERSION = 2;

export interface SyntheticOptions {
  /** Records in each of the 5 training files (default 2000: 10,000 training images, the quick preset's subset). */
  perTrainBatch?: number;
  /** Records in test_batch.bin (default 10,000, CIFAR-10's: the imbalance sweep's lowest rate needs a large test set). */
  testCount?: number;
  seed?: number;
}

const DEFAULTS: Required<SyntheticOptions> = { perTrainBatch: 2000, testCount: 10_000, seed: 0 };

/**
 * Records are generated in chunks of this many, each from its own seeded stream (the first from
 * the file's own, as before chunks existed): a larger file extends a smaller one without changing
 * its records, so runs on the first N images see the same data whatever the file's size.
 */
const CHUNK = 2000;

type Rgb = [number, number, number];
type Shape = "cross" | "rect" | "ellipse" | "triangle" | "blobs";
type Texture = "none" | "stripesV" | "stripesH" | "waves" | "checker" | "spots";

interface ClassStyle {
  background: Rgb;
  foreground: Rgb;
  shape: Shape;
  /** Half-extent of the shape in pixels along x and y. */
  size: [number, number];
  texture: Texture;
}

// Frog is the only class with a green blob texture, but deer and horse stand on green grass, so
// colour alone does not give it away: a model has to pick up the texture too.
const STYLES: ClassStyle[] = [
  { background: [135, 180, 230], foreground: [205, 205, 215], shape: "cross", size: [12, 9], texture: "none" }, // airplane
  { background: [110, 110, 110], foreground: [200, 40, 40], shape: "rect", size: [11, 6], texture: "none" }, // automobile
  { background: [150, 190, 235], foreground: [180, 110, 60], shape: "triangle", size: [7, 7], texture: "none" }, // bird
  { background: [170, 150, 130], foreground: [200, 130, 70], shape: "ellipse", size: [9, 9], texture: "stripesV" }, // cat
  { background: [80, 135, 55], foreground: [120, 80, 40], shape: "ellipse", size: [6, 11], texture: "none" }, // deer
  { background: [160, 160, 150], foreground: [140, 100, 60], shape: "ellipse", size: [10, 8], texture: "stripesH" }, // dog
  { background: [45, 70, 30], foreground: [70, 185, 55], shape: "blobs", size: [4, 4], texture: "spots" }, // frog
  { background: [95, 145, 70], foreground: [90, 50, 30], shape: "ellipse", size: [12, 7], texture: "checker" }, // horse
  { background: [40, 80, 160], foreground: [225, 225, 225], shape: "rect", size: [12, 4], texture: "waves" }, // ship
  { background: [120, 120, 130], foreground: [30, 60, 170], shape: "rect", size: [12, 9], texture: "checker" }, // truck
];

/**
 * Labels of one file: every block of 10 consecutive records holds each class once, in random order.
 * Runs use the first N images (trainLimit/testLimit), so any prefix of a multiple of 10 records
 * must keep exactly 10% positives in train and test alike; a plain shuffle would not (640 of them
 * came out 9.2% vs 11.3%, which moves the epoch-0 loss away from H(p)).
 */
function fileLabels(n: number, rng: Rng): Uint8Array {
  const classes = CLASS_NAMES.map((_, c) => c);
  const labels: number[] = [];
  while (labels.length < n) labels.push(...rng.shuffle([...classes]).slice(0, n - labels.length));
  return Uint8Array.from(labels);
}

function shapeMask(shape: Shape, dx: number, dy: number, sx: number, sy: number, blobs: number[]): number {
  switch (shape) {
    case "cross":
      return (Math.abs(dy) <= sy * 0.3 && Math.abs(dx) <= sx) || (Math.abs(dx) <= sx * 0.25 && Math.abs(dy) <= sy) ? 1 : 0;
    case "rect":
      return Math.abs(dx) <= sx && Math.abs(dy) <= sy ? 1 : 0;
    case "ellipse":
      return (dx * dx) / (sx * sx) + (dy * dy) / (sy * sy) <= 1 ? 1 : 0;
    case "triangle":
      return dy >= -sy && dy <= sy && Math.abs(dx) <= ((dy + sy) / (2 * sy)) * sx ? 1 : 0;
    case "blobs": {
      // Soft Gaussian blobs at absolute offsets (bx, by) with radius r, packed as [bx, by, r, ...].
      let m = 0;
      for (let b = 0; b < blobs.length; b += 3) {
        const ex = dx - blobs[b];
        const ey = dy - blobs[b + 1];
        m = Math.max(m, Math.exp(-(ex * ex + ey * ey) / (2 * blobs[b + 2] * blobs[b + 2])));
      }
      return m;
    }
  }
}

function textureValue(texture: Texture, x: number, y: number, phase: number): number {
  switch (texture) {
    case "none": return 0;
    case "stripesV": return ((x + phase) >> 1) % 2 === 0 ? 1 : -1;
    case "stripesH": return ((y + phase) >> 1) % 2 === 0 ? 1 : -1;
    case "waves": return Math.sin((x + phase) * 0.8 + y * 0.3);
    case "checker": return (((x + phase) >> 2) + (y >> 2)) % 2 === 0 ? 1 : -1;
    case "spots": return Math.sin(x * 1.3 + phase) * Math.sin(y * 1.1 + phase);
  }
}

const NOISE_TABLE_SIZE = 1 << 16;

/**
 * Triangular noise (sum of two uniforms, zero-mean like Gaussian noise) drawn once per file; each
 * image walks it from a random start with a random odd stride. Fresh noise per pixel was the main
 * cost of generation, and no model can exploit a table of 65,536 values walked this way.
 */
function noiseTable(rng: Rng): Float32Array {
  return Float32Array.from({ length: NOISE_TABLE_SIZE }, () => (rng.next() + rng.next() - 1) * 30);
}

/** Draws one image of class `label` into `out` (CHW planes, 3072 bytes; the clamped view rounds and clips). */
function drawImage(label: number, rng: Rng, noise: Float32Array, out: Uint8ClampedArray): void {
  const style = STYLES[label];
  const jitter = (): number => (rng.next() - 0.5) * 40;
  const bg = Float64Array.from(style.background, (c) => c + jitter());
  const fg = Float64Array.from(style.foreground, (c) => c + jitter());
  const brightness = 0.85 + rng.next() * 0.3;
  const cx = 15.5 + (rng.next() - 0.5) * 8;
  const cy = 15.5 + (rng.next() - 0.5) * 8;
  const scale = 0.8 + rng.next() * 0.4;
  const sx = style.size[0] * scale;
  const sy = style.size[1] * scale;
  const phase = rng.int(8);
  const blobs: number[] = [];
  if (style.shape === "blobs") {
    const count = 3 + rng.int(4);
    for (let b = 0; b < count; b++) blobs.push((rng.next() - 0.5) * 20, (rng.next() - 0.5) * 20, sx * (0.7 + rng.next() * 0.6));
  }
  let at = rng.int(NOISE_TABLE_SIZE);
  const stride = 2 * rng.int(NOISE_TABLE_SIZE / 2) + 1;
  // Local copies: imported bindings are getters under tsx/CommonJS, far too slow in this loop.
  const side = IMAGE_SIDE;
  const plane = side * side;
  const wrap = NOISE_TABLE_SIZE - 1;
  const [bg0, bg1, bg2] = bg;
  const [d0, d1, d2] = [fg[0] - bg0, fg[1] - bg1, fg[2] - bg2];
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const m = shapeMask(style.shape, x - cx, y - cy, sx, sy, blobs);
      const t = m > 0 ? 25 * textureValue(style.texture, x, y, phase) * m : 0;
      const p = y * side + x;
      const a0 = (at + stride) & wrap;
      const a1 = (a0 + stride) & wrap;
      at = (a1 + stride) & wrap;
      out[p] = brightness * (bg0 + m * d0 + t) + noise[a0];
      out[plane + p] = brightness * (bg1 + m * d1 + t) + noise[a1];
      out[2 * plane + p] = brightness * (bg2 + m * d2 + t) + noise[at];
    }
  }
}

/** Writes `n` records: chunk 0 from makeRng(seed, "synthetic", name), chunk k > 0 from makeRng(seed, "synthetic", name, k). */
function writeSyntheticFile(file: string, n: number, seed: number, name: string): void {
  const labels = new Uint8Array(n);
  const images = new Uint8Array(n * IMAGE_BYTES);
  for (let start = 0, chunk = 0; start < n; start += CHUNK, chunk++) {
    const rng = chunk === 0 ? makeRng(seed, "synthetic", name) : makeRng(seed, "synthetic", name, chunk);
    const count = Math.min(CHUNK, n - start);
    labels.set(fileLabels(count, rng), start);
    const noise = noiseTable(rng);
    for (let i = start; i < start + count; i++) drawImage(labels[i], rng, noise, new Uint8ClampedArray(images.buffer, i * IMAGE_BYTES, IMAGE_BYTES));
  }
  fs.writeFileSync(file, encodeBatch(images, labels));
}

function markerText(params: Required<SyntheticOptions>): string {
  return [
    "This folder is SYNTHETIC: generated by src/data/synthetic.ts as a stand-in for CIFAR-10,",
    "in the official binary layout (cifar-10-batches-bin/). Each class is drawn with its own colours,",
    "shape and texture plus noise; frog (class 6) is 10% of every file. Results on it say nothing",
    "about CIFAR-10. Run `make data` to get the real data set.",
    `params: ${JSON.stringify({ generator: SYNTHETIC_GENERATOR_VERSION, ...params })}`,
    "",
  ].join("\n");
}

function resolveOptions(opts: SyntheticOptions): Required<SyntheticOptions> {
  const params = { ...DEFAULTS, ...opts };
  for (const key of ["perTrainBatch", "testCount"] as const) {
    if (!Number.isInteger(params[key]) || params[key] < 10) throw new DataError(`synthetic ${key} ${params[key]} must be an integer >= 10`);
  }
  return params;
}

/**
 * Writes `dir/cifar-10-batches-bin/` (5 train batches, test batch, batches.meta.txt, official
 * names and format) and the SYNTHETIC.txt marker (in `dir` and in the batch folder); returns the
 * batch folder. Deterministic given the seed.
 */
export function writeSyntheticCifar10(dir: string, opts: SyntheticOptions = {}): string {
  const params = resolveOptions(opts);
  const batchDir = path.join(dir, BATCH_DIR_NAME);
  fs.mkdirSync(batchDir, { recursive: true });
  for (const name of TRAIN_BATCH_FILES) writeSyntheticFile(path.join(batchDir, name), params.perTrainBatch, params.seed, name);
  writeSyntheticFile(path.join(batchDir, TEST_BATCH_FILE), params.testCount, params.seed, TEST_BATCH_FILE);
  fs.writeFileSync(path.join(batchDir, META_FILE), CLASS_NAMES.join("\n") + "\n\n");
  // The marker goes in both folders so that it travels with the batch files when they are copied or tarred.
  fs.writeFileSync(path.join(batchDir, SYNTHETIC_MARKER), markerText(params));
  fs.writeFileSync(path.join(dir, SYNTHETIC_MARKER), markerText(params));
  return batchDir;
}

/** True when `dir` (a synthetic folder or a cifar-10-batches-bin) holds the generator's marker. */
export function isSynthetic(dir: string): boolean {
  return fs.existsSync(path.join(dir, SYNTHETIC_MARKER)) || fs.existsSync(path.join(dir, BATCH_DIR_NAME, SYNTHETIC_MARKER));
}

export const SYNTHETIC_DIR_NAME = "synthetic";

/**
 * Generates the synthetic set into `<dataDir>/synthetic` unless it is already there with the same
 * parameters and generator version; returns its batch folder. It is built in a temporary folder
 * and renamed into place, so a crash never leaves a half-written set that looks complete.
 */
export function ensureSynthetic(dataDir: string, opts: SyntheticOptions = {}): string {
  const params = resolveOptions(opts);
  const dir = path.join(dataDir, SYNTHETIC_DIR_NAME);
  if (isCurrent(dir, params)) return path.join(dir, BATCH_DIR_NAME);
  fs.mkdirSync(dataDir, { recursive: true });
  const work = fs.mkdtempSync(path.join(dataDir, `.synthetic-${leftoverTag()}-`)); // pid and host: see util/leftovers.ts
  try {
    const fresh = path.join(work, "new");
    writeSyntheticCifar10(fresh, params);
    if (fs.existsSync(dir)) {
      if (isCurrent(dir, params)) return path.join(dir, BATCH_DIR_NAME); // another process finished first
      fs.renameSync(dir, path.join(work, "stale"));
    }
    fs.renameSync(fresh, dir);
    return path.join(dir, BATCH_DIR_NAME);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** How many images ensureSynthetic(dataDir, opts) would generate now: 0 when the set on disk is current. */
export function syntheticImagesToGenerate(dataDir: string, opts: SyntheticOptions = {}): number {
  const params = resolveOptions(opts);
  return isCurrent(path.join(dataDir, SYNTHETIC_DIR_NAME), params) ? 0 : params.perTrainBatch * TRAIN_BATCH_FILES.length + params.testCount;
}

function isCurrent(dir: string, params: Required<SyntheticOptions>): boolean {
  const marker = path.join(dir, SYNTHETIC_MARKER);
  return fs.existsSync(marker) && fs.readFileSync(marker, "utf8") === markerText(params) &&
    batchDirProblem(path.join(dir, BATCH_DIR_NAME)) === null;
}
