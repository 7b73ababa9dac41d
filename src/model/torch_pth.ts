// Reads PyTorch `torch.save` checkpoints (the zip format torch has written since 1.6) without
// Python and without ever executing anything from the file. A .pth is a zip holding
// `<folder>/data.pkl` (a pickle of the state_dict whose tensors point at storages through
// persistent ids) and one raw little-endian file `<folder>/data/<key>` per storage. The pickle is
// run by a small VM of our own (torch_pickle.ts) that only knows the handful of globals a
// state_dict needs; any other global (os.system, builtins.eval, ...) stops the read with an error
// naming it. This file asks the zip reader (torch_zip.ts) for data.pkl, byteorder and the storages
// the pickle references, checks each view against its storage and copies it out into a contiguous
// typed array (a contiguous view of an aligned storage is not copied at all).
// The file may be hostile: every number in it (sizes, counts, offsets, strides) is checked against
// the file before it sizes an allocation, all tensors together may not expand the file by more
// than MATERIALIZE_FACTOR, and every failure is one CheckpointError (one line, naming the file).
//
// May touch: the one file it is asked to read (read only); no tensors, no network.
import * as fs from "fs";
import { UserError } from "../errors";
import { clip, describe, Fail, PyDict, TensorRef, TorchDtype, unpickle } from "./torch_pickle";
import { ZipArchive } from "./torch_zip";

export type TensorValues = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/**
 * One tensor, contiguous in row-major (C) order. float16 and bfloat16 are widened to a
 * Float32Array (exactly: every half value is a float32 value); `dtype` keeps what the file stored.
 * `data` may be a view into the file's bytes (shared, as in torch, by the views of one storage):
 * read it, copy it, but do not write into it.
 */
export interface TensorData {
  dtype: TorchDtype;
  shape: number[];
  data: TensorValues;
}

export type StateDict = Map<string, TensorData>;

/** The checkpoint is unreadable, corrupt, or asks for something we refuse to do. */
export class CheckpointError extends UserError {
  override name = "CheckpointError";
}

/** Reads a state_dict saved with `torch.save(model.state_dict(), path)`. */
export function readCheckpoint(file: string): StateDict {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new CheckpointError(`checkpoint ${file}: cannot read it: ${(e as Error).message}`);
  }
  return parseCheckpoint(bytes, file);
}

/**
 * Views may repeat their storage's contents (a transpose, a stride-0 expand), so tensors can hold
 * more bytes than the file's storages; but a small file must not name gigabytes of them. All
 * tensors of one checkpoint together may hold at most this many times the file's size, plus
 * MATERIALIZE_SLACK_BYTES.
 */
const MATERIALIZE_FACTOR = 2;
const MATERIALIZE_SLACK_BYTES = 16 << 20;
/** byteorder holds "little" or "big"; anything longer is not a byteorder entry. */
const MAX_BYTEORDER_BYTES = 16;

const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/** Same as readCheckpoint, from bytes in memory; `label` names the source in errors. */
export function parseCheckpoint(bytes: Uint8Array, label: string): StateDict {
  // Names in messages come from the file: control characters are escaped so the message stays one line.
  const fail = (msg: string): never => {
    throw new CheckpointError(`checkpoint ${label}: ${msg.replace(UNPRINTABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)}`);
  };
  if (bytes.length >= 2 && bytes[0] === 0x80) {
    fail("this is the legacy (pre-1.6) torch.save format, not a zip; re-save it with a recent torch");
  }
  if (bytes.length < 22 || bytes[0] !== 0x50 || bytes[1] !== 0x4b) {
    fail(`not a zip file (${bytes.length} bytes; a torch.save checkpoint starts with "PK")`);
  }
  const zip = new ZipArchive(bytes, fail);
  const pklName = [...zip.entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pklName === undefined) {
    return fail(`no <folder>/data.pkl entry in the zip (entries: ${[...zip.entries.keys()].slice(0, 8).map(clip).join(", ")}); ` +
      "is it a torch.save file?");
  }
  const folder = pklName.slice(0, -"data.pkl".length);
  const byteorderEntry = zip.entries.get(`${folder}byteorder`);
  if (byteorderEntry !== undefined) {
    if (byteorderEntry.size > MAX_BYTEORDER_BYTES) fail(`${clip(folder)}byteorder holds ${byteorderEntry.size} bytes, not "little" or "big"`);
    const byteorder = new TextDecoder().decode(zip.data(byteorderEntry.name)).trim();
    if (byteorder !== "little") fail(`storages are ${JSON.stringify(byteorder)}-endian; only little-endian is supported`);
  }
  const root = unpickle(zip.data(pklName), fail);
  if (!(root instanceof PyDict)) return fail(`data.pkl holds ${describe(root)}, not a state_dict (a dict of tensors)`);

  // Only the storages the pickle references are read, each once.
  const tensors: Array<[string, TensorRef, Uint8Array]> = [];
  for (const [key, value] of root.items) {
    if (typeof key !== "string") return fail(`state_dict key ${describe(key)} is not a string`);
    if (!(value instanceof TensorRef)) return fail(`state_dict entry "${clip(key)}" is ${describe(value)}, not a tensor`);
    const name = `${folder}data/${value.storage.key}`;
    if (!zip.entries.has(name)) return fail(`tensor "${clip(key)}": storage file ${clip(name)} is missing`);
    tensors.push([key, value, zip.data(name)]);
  }
  zip.checkNoOverlap();
  const budget = { bytes: MATERIALIZE_FACTOR * bytes.length + MATERIALIZE_SLACK_BYTES };
  const state: StateDict = new Map();
  for (const [key, ref, storageBytes] of tensors) {
    state.set(key, materialize(ref, storageBytes, budget, (msg) => fail(`tensor "${clip(key)}": ${msg}`)));
  }
  return state;
}

// ---------------------------------------------------------------------------------------------
// Storage -> contiguous typed array

const ITEM_SIZE: Record<TorchDtype, number> = {
  float32: 4, float64: 8, float16: 2, bfloat16: 2, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
};

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * `count` elements of `dtype` from `bytes`, as the typed array the dtype maps to: a view into
 * `bytes` when they sit at an offset the array type allows (torch.save aligns every storage to 64
 * bytes), else an aligned copy. float16 and bfloat16 are widened into a new array.
 */
function decodeElements(dtype: TorchDtype, bytes: Uint8Array, count: number): TensorValues {
  const item = ITEM_SIZE[dtype];
  let buf = bytes.buffer;
  let at = bytes.byteOffset;
  if (at % item !== 0) {
    // (Not bytes.slice: on a Node Buffer, slice is a view.)
    const copy = new Uint8Array(count * item);
    copy.set(bytes.subarray(0, copy.length));
    buf = copy.buffer;
    at = 0;
  }
  switch (dtype) {
    case "float32": return new Float32Array(buf, at, count);
    case "float64": return new Float64Array(buf, at, count);
    case "int64": return new BigInt64Array(buf, at, count);
    case "int32": return new Int32Array(buf, at, count);
    case "int16": return new Int16Array(buf, at, count);
    case "int8": return new Int8Array(buf, at, count);
    case "uint8": case "bool": return new Uint8Array(buf, at, count);
    case "float16": {
      const half = new Uint16Array(buf, at, count);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = halfToFloat(half[i]);
      return out;
    }
    case "bfloat16": {
      // bfloat16 is the top half of a float32.
      const half = new Uint16Array(buf, at, count);
      const out = new Uint32Array(count);
      for (let i = 0; i < count; i++) out[i] = half[i] << 16;
      return new Float32Array(out.buffer);
    }
  }
}

/** Bytes one element takes once decoded (float16 and bfloat16 widen to float32). */
const decodedSize = (dtype: TorchDtype): number => (dtype === "float16" || dtype === "bfloat16" ? 4 : ITEM_SIZE[dtype]);

/**
 * Copies the view out of its storage. Sizes, offsets and strides were checked to be non-negative
 * integers when the pickle was read; here they are checked against the storage and `budget`
 * (bytes all tensors of the checkpoint may still take), before anything is allocated.
 */
function materialize(t: TensorRef, bytes: Uint8Array, budget: { bytes: number }, fail: Fail): TensorData {
  const { storage, offset, shape, stride } = t;
  if (!isLittleEndianHost) fail("this machine is big-endian; reading torch storages needs little-endian");
  const needBytes = storage.numel * ITEM_SIZE[storage.dtype];
  if (bytes.length < needBytes) {
    fail(`storage ${clip(storage.key)} has ${bytes.length} bytes, its ${storage.numel} ${storage.dtype} elements need ${needBytes}`);
  }
  // A stride-0 view (an expand) could name billions of elements over a tiny storage.
  const maxElements = Math.floor(budget.bytes / decodedSize(storage.dtype));
  let numel = 1;
  for (const n of shape) {
    numel *= n;
    if (numel > maxElements) {
      fail(`size [${shape}] names more elements than this ${bytes.length}-byte storage's checkpoint may expand to ` +
        `(views may repeat storage contents, up to ${MATERIALIZE_FACTOR}x the file size + ${MATERIALIZE_SLACK_BYTES >> 20} MiB in all)`);
    }
  }
  budget.bytes -= numel * decodedSize(storage.dtype);
  if (numel === 0) return { dtype: storage.dtype, shape: [...shape], data: decodeElements(storage.dtype, bytes, 0) };
  const last = offset + shape.reduce((acc, n, d) => acc + (n - 1) * stride[d], 0);
  if (last >= storage.numel) {
    fail(`view (offset ${offset}, size [${shape}], stride [${stride}]) reaches past its storage of ${storage.numel} elements`);
  }
  // Only the elements from the view's first to its last are decoded.
  const item = ITEM_SIZE[storage.dtype];
  const span = decodeElements(storage.dtype, bytes.subarray(offset * item, (last + 1) * item), last + 1 - offset);
  return { dtype: storage.dtype, shape: [...shape], data: gather(span, shape, stride, numel) };
}

const isLittleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isContiguous(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d];
  }
  return true;
}

/**
 * Copies the strided view into row-major order: dimensions that step through memory as one are
 * merged first, then an odometer walks the outer indices and moves one row of the last dimension
 * at a time (long rows: a copy for stride 1, a fill for stride 0; else a loop).
 */
function gather(src: TensorValues, shape: number[], stride: number[], numel: number): TensorValues {
  if (isContiguous(shape, stride)) return src;
  const sizes: number[] = [];
  const steps: number[] = [];
  shape.forEach((n, d) => {
    if (n === 1) return;
    const last = sizes.length - 1;
    if (last >= 0 && steps[last] === n * stride[d]) {
      sizes[last] *= n;
      steps[last] = stride[d];
    } else {
      sizes.push(n);
      steps.push(stride[d]);
    }
  });
  const out = new (src.constructor as { new (n: number): TensorValues })(numel);
  const from = src as Float32Array;
  const to = out as Float32Array;
  const outer = sizes.length - 1;
  const rowLength = sizes[outer];
  const rowStride = steps[outer];
  const long = rowLength >= 64; // short rows: a plain loop beats a subarray per row
  const index = new Array<number>(outer).fill(0);
  let at = 0;
  for (let i = 0; i < numel; i += rowLength) {
    if (rowStride === 1 && long) to.set(from.subarray(at, at + rowLength), i);
    else if (rowStride === 0 && long) to.fill(from[at], i, i + rowLength);
    else for (let j = 0, k = at; j < rowLength; j++, k += rowStride) to[i + j] = from[k];
    for (let d = outer - 1; d >= 0; d--) {
      if (++index[d] < sizes[d]) {
        at += steps[d];
        break;
      }
      at -= (sizes[d] - 1) * steps[d];
      index[d] = 0;
    }
  }
  return out;
}
