// CIFAR-10 in its official binary form: download and verify the tarball, extract it atomically, and
// parse the batch files. Each record is 1 label byte followed by 3072 pixel bytes: the red plane,
// then green, then blue, each 32x32 row-major. Images are kept exactly as in the file.
import * as fs from "fs";
import * as path from "path";
import * as tar from "tar";
import { downloadFile, ProgressCallback } from "../util/download";
import { leftoverTag } from "../util/leftovers";
import { UserError } from "../errors";
import { EnvironmentName, readEnvironment } from "../config";

export const CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
export const CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530";
export const CIFAR10_TARBALL = "cifar-10-binary.tar.gz";
/** The folder the official tarball extracts to, inside the data folder. */
export const BATCH_DIR_NAME = "cifar-10-batches-bin";
export const TRAIN_BATCH_FILES = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"] as const;
export const TEST_BATCH_FILE = "test_batch.bin";
export const META_FILE = "batches.meta.txt";
export const BATCH_FILES: readonly string[] = [...TRAIN_BATCH_FILES, TEST_BATCH_FILE];
/** Environment variable naming a local copy of the tarball (for machines without internet). */
export const TARBALL_ENV: EnvironmentName = "CIFAR10_TARBALL";

export const CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"] as const;
export const NUM_CLASSES = CLASS_NAMES.length;
export const IMAGE_SIDE = 32;
export const CHANNELS = 3;
export const IMAGE_BYTES = IMAGE_SIDE * IMAGE_SIDE * CHANNELS;
export const RECORD_BYTES = 1 + IMAGE_BYTES;

/** Images with their 0..9 labels. */
export interface LabelledImages {
  /** n * 3072 bytes; each image is its R plane, G plane, B plane, row-major 32x32, as in the file. */
  images: Uint8Array;
  labels: Uint8Array;
  n: number;
  /** The batch files the records came from, in order. */
  files: string[];
}

/** Missing, truncated or malformed data; the message names the file and what is wrong. */
export class DataError extends UserError {
  override name = "DataError";
}

/** How to get the real data into `dataDir`, appended to errors about missing CIFAR-10. */
export function howToGetCifar10(dataDir: string): string {
  return `run \`make data\` (downloads ${CIFAR10_URL}, about 170 MB, md5-checked). Without internet, put ` +
    `${CIFAR10_TARBALL} (copied from a machine that has it) at ${path.join(dataDir, CIFAR10_TARBALL)} and run \`make data\`, ` +
    `or run \`npx tsx src/data/main.ts --local PATH\` (or \`${TARBALL_ENV}=PATH make data\`)`;
}

/** Why `dir` is not a usable batch folder, or null when all six batch files look complete. */
export function batchDirProblem(dir: string): string | null {
  if (!fs.existsSync(dir)) return `${dir} does not exist`;
  for (const name of BATCH_FILES) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) return `${file} is missing`;
    const size = fs.statSync(file).size;
    if (size === 0 || size % RECORD_BYTES !== 0) return sizeProblem(file, size);
  }
  return null;
}

function sizeProblem(file: string, size: number): string {
  return `${file}: ${size} bytes, not a positive multiple of the ${RECORD_BYTES}-byte record ` +
    `(1 label + 32x32x3 pixels): it looks truncated or is not a CIFAR-10 binary batch`;
}

/** Reads the whole file, or only its first `limit` records; the file's size is checked either way. */
export function readBatchFile(file: string, limit: number | null = null): LabelledImages {
  if (!fs.existsSync(file)) throw new DataError(`${file}: CIFAR-10 batch file missing; run \`make data\` again`);
  const size = fs.statSync(file).size;
  if (size === 0 || size % RECORD_BYTES !== 0) throw new DataError(`${sizeProblem(file, size)}; run \`make data\` again`);
  const n = limit === null ? size / RECORD_BYTES : Math.min(limit, size / RECORD_BYTES);
  const raw = readPrefix(file, n * RECORD_BYTES);
  const images = new Uint8Array(n * IMAGE_BYTES);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const label = raw[i * RECORD_BYTES];
    if (label >= NUM_CLASSES) {
      throw new DataError(`${file}: record ${i} has label ${label}, outside 0..${NUM_CLASSES - 1}; not a CIFAR-10 batch, or corrupted, run \`make data\` again`);
    }
    labels[i] = label;
    images.set(raw.subarray(i * RECORD_BYTES + 1, (i + 1) * RECORD_BYTES), i * IMAGE_BYTES);
  }
  return { images, labels, n, files: [file] };
}

function readPrefix(file: string, bytes: number): Buffer {
  const buf = Buffer.alloc(bytes);
  const fd = fs.openSync(file, "r");
  try {
    let offset = 0;
    while (offset < bytes) {
      const got = fs.readSync(fd, buf, offset, bytes - offset, offset);
      if (got === 0) throw new DataError(`${file}: ended after ${offset} of ${bytes} bytes while reading; run \`make data\` again`);
      offset += got;
    }
  } finally {
    fs.closeSync(fd);
  }
  return buf;
}

/** The official binary layout of a batch file: per record, the label byte then the 3072 pixel bytes. */
export function encodeBatch(images: Uint8Array, labels: Uint8Array): Buffer {
  const n = labels.length;
  if (images.length !== n * IMAGE_BYTES) throw new DataError(`encodeBatch: ${images.length} image bytes for ${n} labels (expected ${n * IMAGE_BYTES})`);
  const out = Buffer.alloc(n * RECORD_BYTES);
  for (let i = 0; i < n; i++) {
    out[i * RECORD_BYTES] = labels[i];
    out.set(images.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES), i * RECORD_BYTES + 1);
  }
  return out;
}

export function concatLabelledImages(parts: LabelledImages[]): LabelledImages {
  if (parts.length === 1) return parts[0];
  const n = parts.reduce((s, p) => s + p.n, 0);
  const images = new Uint8Array(n * IMAGE_BYTES);
  const labels = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    images.set(p.images, at * IMAGE_BYTES);
    labels.set(p.labels, at);
    at += p.n;
  }
  return { images, labels, n, files: parts.flatMap((p) => p.files) };
}

export interface LoadLimits {
  /** First N training images in file order (data_batch_1 first); null: all. */
  trainLimit: number | null;
  testLimit: number | null;
}

/**
 * Loads the train and test splits from a batch folder (real or synthetic), reading only as many
 * records as the limits need. A limit above what the files hold yields all of them (check `n`).
 */
export function loadCifar10(batchDir: string, limits: LoadLimits): { train: LabelledImages; test: LabelledImages } {
  if (!fs.existsSync(batchDir)) {
    throw new DataError(`${batchDir}: CIFAR-10 batches not found; to get them, ${howToGetCifar10(path.dirname(batchDir))}`);
  }
  const trainParts: LabelledImages[] = [];
  let remaining = limits.trainLimit;
  for (const name of TRAIN_BATCH_FILES) {
    if (remaining !== null && remaining <= 0) break;
    const part = readBatchFile(path.join(batchDir, name), remaining);
    trainParts.push(part);
    if (remaining !== null) remaining -= part.n;
  }
  const test = readBatchFile(path.join(batchDir, TEST_BATCH_FILE), limits.testLimit);
  return { train: concatLabelledImages(trainParts), test };
}

export interface EnsureCifar10Options {
  /** Folder that receives the tarball and `cifar-10-batches-bin/`. */
  dataDir: string;
  /** A local copy of cifar-10-binary.tar.gz; defaults to $CIFAR10_TARBALL. */
  localCopy?: string | null;
  onProgress?: ProgressCallback;
  /** Overridable so tests can use a tarball of synthetic batches; defaults to the official md5. */
  expectedMd5?: string;
  url?: string;
}

/**
 * Makes `<dataDir>/cifar-10-batches-bin` complete and returns its path. Downloads (or copies) and
 * verifies the tarball, extracts it into a temporary folder inside dataDir, checks the six batch
 * files, then renames the folder into place, so the final path is either absent or complete.
 * A second call finds the folder complete and does nothing.
 */
export async function ensureCifar10(opts: EnsureCifar10Options): Promise<string> {
  const target = path.join(opts.dataDir, BATCH_DIR_NAME);
  if (batchDirProblem(target) === null) return target;
  fs.mkdirSync(opts.dataDir, { recursive: true });
  const localCopy = opts.localCopy ?? readEnvironment()[TARBALL_ENV];
  const { path: tarball } = await downloadFile({
    url: opts.url ?? CIFAR10_URL,
    dest: path.join(opts.dataDir, CIFAR10_TARBALL),
    hash: { algorithm: "md5", expected: opts.expectedMd5 ?? CIFAR10_MD5 },
    localCopy,
    onProgress: opts.onProgress,
    localCopyHint: `npx tsx src/data/main.ts --local PATH, or ${TARBALL_ENV}=PATH make data`,
  });

  // The pid and host in the name let a later start-up remove it if this process is killed (util/leftovers.ts).
  const work = fs.mkdtempSync(path.join(opts.dataDir, `.extract-${leftoverTag()}-`));
  try {
    await tar.x({ file: tarball, cwd: work });
    const extracted = path.join(work, BATCH_DIR_NAME);
    const problem = batchDirProblem(extracted);
    if (problem !== null) throw new DataError(`${tarball}: did not extract to a complete ${BATCH_DIR_NAME}/ (${problem.replace(work + path.sep, "")}); download it again`);
    if (fs.existsSync(target)) {
      if (batchDirProblem(target) === null) return target; // another process finished first
      // An incomplete folder (e.g. files deleted by hand) is moved out of the way and discarded with `work`.
      fs.renameSync(target, path.join(work, "incomplete-previous"));
    }
    fs.renameSync(extracted, target);
    return target;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
