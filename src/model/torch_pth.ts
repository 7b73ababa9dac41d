// Reads PyTorch `torch.save` checkpoints (the zip format torch has written since 1.6) without
// Python and without ever executing anything from the file. A .pth is a zip holding
// `<folder>/data.pkl` (a pickle of the state_dict whose tensors point at storages through
// persistent ids) and one raw little-endian file `<folder>/data/<key>` per storage. The pickle is
// run by a small VM of our own (torch_pickle.ts) that only knows the handful of globals a
// state_dict needs; any other global (os.system, builtins.eval, ...) stops the read with an error
// naming it. This file opens the zip, checks the storages and copies each tensor out of its
// storage into a contiguous typed array.
//
// May touch: the one file it is asked to read (read only); no tensors, no network.
import * as fs from "fs";
import { unzipSync } from "fflate";
import { UserError } from "../errors";
import { describe, Fail, PyDict, TensorRef, TorchDtype, unpickle } from "./torch_pickle";

export type TensorValues = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/**
 * One tensor, contiguous in row-major (C) order. float16 and bfloat16 are widened to a
 * Float32Array (exactly: every half value is a float32 value); `dtype` keeps what the file stored.
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

/** Same as readCheckpoint, from bytes in memory; `label` names the source in errors. */
export function parseCheckpoint(bytes: Uint8Array, label: string): StateDict {
  const fail = (msg: string): never => {
    throw new CheckpointError(`checkpoint ${label}: ${msg}`);
  };
  const entries = unzipEntries(bytes, fail);
  const pklName = [...entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pklName === undefined) {
    return fail(`no <folder>/data.pkl entry in the zip (entries: ${[...entries.keys()].slice(0, 8).join(", ")}); ` +
      "is it a torch.save file?");
  }
  const folder = pklName.slice(0, -"data.pkl".length);
  const byteorder = entries.get(`${folder}byteorder`);
  if (byteorder && new TextDecoder().decode(byteorder).trim() !== "little") {
    fail(`storages are ${new TextDecoder().decode(byteorder).trim()}-endian; only little-endian is supported`);
  }
  const root = unpickle(entries.get(pklName) as Uint8Array, fail);
  if (!(root instanceof PyDict)) return fail(`data.pkl holds ${describe(root)}, not a state_dict (a dict of tensors)`);

  const state: StateDict = new Map();
  for (const [key, value] of root.items) {
    if (typeof key !== "string") return fail(`state_dict key ${describe(key)} is not a string`);
    if (!(value instanceof TensorRef)) return fail(`state_dict entry "${key}" is ${describe(value)}, not a tensor`);
    const storageBytes = entries.get(`${folder}data/${value.storage.key}`);
    if (storageBytes === undefined) return fail(`tensor "${key}": storage file ${folder}data/${value.storage.key} is missing`);
    state.set(key, materialize(value, storageBytes, (msg) => fail(`tensor "${key}": ${msg}`)));
  }
  return state;
}

// ---------------------------------------------------------------------------------------------
// Zip

function unzipEntries(bytes: Uint8Array, fail: Fail): Map<string, Uint8Array> {
  if (bytes.length >= 2 && bytes[0] === 0x80) {
    fail("this is the legacy (pre-1.6) torch.save format, not a zip; re-save it with a recent torch");
  }
  if (bytes.length < 22 || bytes[0] !== 0x50 || bytes[1] !== 0x4b) {
    fail(`not a zip file (${bytes.length} bytes; a torch.save checkpoint starts with "PK")`);
  }
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes);
  } catch (e) {
    return fail(`the zip is truncated or corrupt (${(e as Error).message}); download or save it again`);
  }
  return new Map(Object.entries(files));
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

/** Decodes the whole storage (numel elements) into the typed array its dtype maps to. */
function decodeStorage(dtype: TorchDtype, bytes: Uint8Array, numel: number): TensorValues {
  // Copy into a fresh, aligned buffer: zip entries sit at arbitrary byte offsets.
  const buf = bytes.slice(0, numel * ITEM_SIZE[dtype]).buffer;
  switch (dtype) {
    case "float32": return new Float32Array(buf);
    case "float64": return new Float64Array(buf);
    case "int64": return new BigInt64Array(buf);
    case "int32": return new Int32Array(buf);
    case "int16": return new Int16Array(buf);
    case "int8": return new Int8Array(buf);
    case "uint8": case "bool": return new Uint8Array(buf);
    case "float16": {
      const half = new Uint16Array(buf);
      const out = new Float32Array(numel);
      for (let i = 0; i < numel; i++) out[i] = halfToFloat(half[i]);
      return out;
    }
    case "bfloat16": {
      // bfloat16 is the top half of a float32.
      const half = new Uint16Array(buf);
      const out = new Uint32Array(numel);
      for (let i = 0; i < numel; i++) out[i] = half[i] << 16;
      return new Float32Array(out.buffer);
    }
  }
}

function materialize(t: TensorRef, bytes: Uint8Array, fail: Fail): TensorData {
  const { storage, offset, shape, stride } = t;
  if (!isLittleEndianHost) fail("this machine is big-endian; reading torch storages needs little-endian");
  const needBytes = storage.numel * ITEM_SIZE[storage.dtype];
  if (bytes.length < needBytes) {
    fail(`storage ${storage.key} has ${bytes.length} bytes, its ${storage.numel} ${storage.dtype} elements need ${needBytes}`);
  }
  const numel = shape.reduce((a, b) => a * b, 1);
  // A stride-0 view (an expand) could name billions of elements over a tiny storage.
  if (numel > 2 ** 31 - 1) fail(`size [${shape}] has ${numel} elements, more than one typed array can hold`);
  const last = offset + shape.reduce((acc, n, d) => acc + (n - 1) * stride[d], 0);
  if (numel > 0 && (offset < 0 || last >= storage.numel)) {
    fail(`view (offset ${offset}, size [${shape}], stride [${stride}]) reaches past its storage of ${storage.numel} elements`);
  }
  const all = decodeStorage(storage.dtype, bytes, storage.numel);
  return { dtype: storage.dtype, shape: [...shape], data: gather(all, offset, shape, stride, numel) };
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

/** Copies the strided view into row-major order (an odometer over the indices). */
function gather(src: TensorValues, offset: number, shape: number[], stride: number[], numel: number): TensorValues {
  if (isContiguous(shape, stride)) return src.slice(offset, offset + numel);
  const out = new (src.constructor as { new (n: number): TensorValues })(numel);
  const rank = shape.length;
  const index = new Array<number>(rank).fill(0);
  let at = offset;
  for (let i = 0; i < numel; i++) {
    (out as Float32Array)[i] = (src as Float32Array)[at];
    for (let d = rank - 1; d >= 0; d--) {
      if (++index[d] < shape[d]) {
        at += stride[d];
        break;
      }
      at -= (shape[d] - 1) * stride[d];
      index[d] = 0;
    }
  }
  return out;
}
