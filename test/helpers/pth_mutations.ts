// Seeded mutations of a real torch.save checkpoint for test/pth_fuzz.test.ts. The structure of
// the file (zip records, pickle opcodes, which ints are a tensor's size/stride/offset) comes from
// tools/pth_fuzz_reference.py, found with Python's zipfile and pickletools, not with the reader
// under test. A case is a few mutations of these kinds, drawn from makeRng(seed, "case", index),
// so any case replays alone:
//   truncate   cut the file short (anywhere, in the central directory, in data.pkl)
//   bitflip    flip bits in data.pkl, in zip headers and end records, or anywhere
//   zipfield   set a size/offset/count/method field of a local or central header, the end record,
//              the zip64 end record or locator to a boundary or random value
//   opswap     replace one pickle opcode by any other opcode (its argument bytes stay)
//   hugecount  in place: a length or memo argument set huge, or an opcode turned into a LONG4 /
//              BINUNICODE whose count swallows the rest of data.pkl
//   intsplice  one integer opcode replaced by an integer (or float) of another encoding and value
//   view       a tensor's size, stride, offset or storage element count set to what makes a view
//              hostile: stride 0 with a huge size, negative, fractional, past the storage
//   global     a GLOBAL's module/name replaced by a forbidden one (os.system, builtins.eval, ...)
// Pickle edits that change data.pkl's length (by at most the free bytes after it) also update its
// local and central sizes, so they reach the pickle VM instead of failing in the zip checks.
import { makeRng, Rng } from "../../src/rng";

export interface LayoutEntry {
  name: string; local: number; central: number; data: number; size: number; extra64: number | null; slack: number;
}
export interface Layout {
  file: string;
  size: number;
  end: number;
  end64: number | null;
  locator: number | null;
  entries: LayoutEntry[];
  tensors: number;
  pickle: {
    entry: string;
    /** [offset in data.pkl, opcode byte, argument length] */
    ops: Array<[number, number, number]>;
    tensors: Array<{ numel: number; offset: number; size: number[]; stride: number[] }>;
  };
}

export const KINDS = ["truncate", "bitflip", "zipfield", "opswap", "hugecount", "intsplice", "view", "global"] as const;
export type Kind = (typeof KINDS)[number];
const WEIGHTS: Record<Kind, number> = {
  truncate: 10, bitflip: 20, zipfield: 20, opswap: 12, hugecount: 10, intsplice: 10, view: 12, global: 6,
};

interface Splice { at: number; remove: number; insert: number[] }
interface ByteEdit { at: number; bytes: number[] }

export interface Mutation {
  kinds: Kind[];
  description: string;
  /** Edits of data.pkl (offsets into the original data.pkl). */
  splices: Splice[];
  /** Edits of the file, applied after the pickle edits. */
  edits: ByteEdit[];
  /** Length of the file the reader gets. */
  length: number;
}

/** Every opcode of pickle protocols 0-5 (the reader knows a subset; the rest must be refused). */
const OPCODES = [..."()*.01245FGIJKLMNPQRSTUVXabcdeghijlopqrstu}]", "\x80", "\x81", "\x82", "\x83", "\x84", "\x85", "\x86",
  "\x87", "\x88", "\x89", "\x8a", "\x8b", "\x8c", "\x8d", "\x8e", "\x8f", "\x90", "\x91", "\x92", "\x93", "\x94", "\x95",
  "\x96", "\x97", "\x98"].map((c) => c.charCodeAt(0));
const INT_OPS = new Set([0x4a, 0x4b, 0x4d, 0x8a, 0x8b]); // BININT, BININT1, BININT2, LONG1, LONG4
const FORBIDDEN = ["os\nsystem", "builtins\neval", "builtins\nexec", "subprocess\nPopen", "posix\nsystem", "torch\nload",
  "builtins\ngetattr", "torch._utils\n_rebuild_tensor", "collections\nOrderedDict2", "__builtin__\nopen", "nt\nsystem"];

const le = (value: bigint, bytes: number): number[] =>
  Array.from({ length: bytes }, (_, i) => Number((BigInt.asUintN(8 * bytes, value) >> BigInt(8 * i)) & 0xffn));

/** One pickle integer opcode for `v`: the smallest encoding, or a wider one, or a float. */
function encodeInt(rng: Rng, v: bigint): number[] {
  const options: number[][] = [];
  if (v >= 0n && v < 256n) options.push([0x4b, Number(v)]);
  if (v >= 0n && v < 65536n) options.push([0x4d, ...le(v, 2)]);
  if (v >= -(2n ** 31n) && v < 2n ** 31n) options.push([0x4a, ...le(v, 4)]);
  const bytes = Math.max(1, Math.ceil((v.toString(2).length + 2) / 8));
  options.push([0x8a, bytes, ...le(v, bytes)]);
  if (rng.next() < 0.15) {
    const f = new DataView(new ArrayBuffer(8));
    f.setFloat64(0, Number(v) + (rng.next() < 0.5 ? 0.5 : 0), false);
    options.push([0x47, ...Array.from(new Uint8Array(f.buffer))]);
  }
  return options[rng.int(options.length)];
}

export class Mutator {
  private readonly pklEntry: LayoutEntry;
  private readonly opText: (i: number) => [number, number]; // [start, end) of op i in data.pkl

  constructor(private readonly layout: Layout, private readonly original: Uint8Array) {
    this.pklEntry = layout.entries.find((e) => e.name === layout.pickle.entry) as LayoutEntry;
    const ops = layout.pickle.ops;
    this.opText = (i) => [ops[i][0], ops[i][0] + 1 + ops[i][2]];
  }

  /** The mutations of case `index` under `seed`. */
  mutation(seed: number, index: number): Mutation {
    const rng = makeRng(seed, "case", index);
    const m: Mutation = { kinds: [], description: "", splices: [], edits: [], length: this.layout.size };
    const parts: string[] = [];
    const count = 1 + (rng.next() < 0.35 ? 1 + rng.int(2) : 0);
    for (let i = 0; i < count; i++) {
      const kind = pick(rng, WEIGHTS);
      m.kinds.push(kind);
      parts.push(this[kind](rng, m));
    }
    m.description = parts.join("; ");
    return m;
  }

  private pkl(at: number): number {
    return this.pklEntry.data + at;
  }

  private truncate(rng: Rng, m: Mutation): string {
    const r = rng.next();
    const cd = Math.min(...this.layout.entries.map((e) => e.central));
    const at = r < 0.5 ? rng.int(this.layout.size) : r < 0.8 ? cd + rng.int(this.layout.size - cd) : this.pkl(rng.int(this.pklEntry.size));
    m.length = Math.min(m.length, at);
    return `truncate to ${at}`;
  }

  private headerRange(rng: Rng): [number, number] {
    const r = rng.next();
    const e = this.entry(rng);
    if (r < 0.4) return [e.local, e.data];
    if (r < 0.8) return [e.central, e.central + 46 + e.name.length];
    return [this.layout.end64 ?? this.layout.end, this.layout.size];
  }

  private bitflip(rng: Rng, m: Mutation): string {
    const r = rng.next();
    const [from, to] = r < 0.35 ? [this.pkl(0), this.pkl(this.pklEntry.size)] : r < 0.7 ? this.headerRange(rng) : [0, this.layout.size];
    const flips: string[] = [];
    for (let n = 1 + rng.int(8); n > 0; n--) {
      const at = from + rng.int(to - from);
      const bit = rng.int(8);
      m.edits.push({ at, bytes: [(this.original[at] ^ (1 << bit)) & 0xff] });
      flips.push(`${at}.${bit}`);
    }
    return `bitflip ${flips.join(",")}`;
  }

  private entry(rng: Rng): LayoutEntry {
    const r = rng.next();
    const es = this.layout.entries;
    if (r < 0.3) return this.pklEntry;
    if (r < 0.4) return es.find((e) => e.name.endsWith("/byteorder")) ?? this.pklEntry;
    return es[rng.int(es.length)];
  }

  private zipfield(rng: Rng, m: Mutation): string {
    const L = this.layout;
    const fields: Array<[string, number, number]> = []; // name, offset, width
    const e = this.entry(rng);
    const r = rng.next();
    if (r < 0.5) {
      fields.push(["flags", e.central + 8, 2], ["method", e.central + 10, 2], ["csize", e.central + 20, 4],
        ["usize", e.central + 24, 4], ["namelen", e.central + 28, 2], ["extralen", e.central + 30, 2],
        ["commentlen", e.central + 32, 2], ["localoffset", e.central + 42, 4]);
      if (e.extra64 !== null) fields.push(["zip64 value", e.extra64 + 8 * rng.int(3), 8]);
    } else if (r < 0.8) {
      fields.push(["local flags", e.local + 6, 2], ["local method", e.local + 8, 2], ["local csize", e.local + 18, 4],
        ["local usize", e.local + 22, 4], ["local namelen", e.local + 26, 2], ["local extralen", e.local + 28, 2]);
    } else {
      fields.push(["end count", L.end + 10, 2], ["end disk count", L.end + 8, 2], ["end dirsize", L.end + 12, 4],
        ["end diroffset", L.end + 16, 4], ["end commentlen", L.end + 20, 2]);
      if (L.end64 !== null) {
        fields.push(["end64 count", L.end64 + 32, 8], ["end64 disk count", L.end64 + 24, 8], ["end64 dirsize", L.end64 + 40, 8],
          ["end64 diroffset", L.end64 + 48, 8]);
      }
      if (L.locator !== null) fields.push(["locator end64 offset", L.locator + 8, 8]);
    }
    const [name, at, width] = fields[rng.int(fields.length)];
    let orig = 0n;
    for (let i = width - 1; i >= 0; i--) orig = (orig << 8n) | BigInt(this.original[at + i]);
    const max = (1n << BigInt(8 * width)) - 1n;
    const size = BigInt(L.size);
    const candidates = [0n, 1n, max, max >> 1n, (max >> 1n) + 1n, orig + 1n, orig - 1n, orig + 64n, orig * 2n, size, size - 1n,
      size + 1n, BigInt(this.pklEntry.size), 8n, 2n ** 31n, 2n ** 53n, BigInt(rng.uint32()), BigInt(rng.uint32()) * BigInt(rng.uint32())];
    const value = BigInt.asUintN(8 * width, candidates[rng.int(candidates.length)]);
    m.edits.push({ at, bytes: le(value, width) });
    return `zipfield ${name} of ${name.startsWith("end") || name.startsWith("locator") ? "the end records" : e.name} = ${value}`;
  }

  private opswap(rng: Rng, m: Mutation): string {
    const i = rng.int(this.layout.pickle.ops.length);
    const [at] = this.opText(i);
    const op = OPCODES[rng.int(OPCODES.length)];
    m.splices.push({ at, remove: 1, insert: [op] });
    return `opswap op ${i} at ${at}: 0x${this.original[this.pkl(at)].toString(16)} -> 0x${op.toString(16)}`;
  }

  private hugecount(rng: Rng, m: Mutation): string {
    const ops = this.layout.pickle.ops;
    const i = rng.int(ops.length);
    const [at, end] = this.opText(i);
    const rest = this.pklEntry.size - at - 5;
    const huge = [0xffffffff, 0x7fffffff, 0x80000000, 1 << 24, rest, rest + 1, rng.uint32()][rng.int(7)];
    if (rng.next() < 0.5 || end - at < 2) {
      // LONG4 / BINUNICODE / BINBYTES / LONG_BINPUT / LONG_BINGET with a 4-byte count, in place of op i.
      const op = [0x8b, 0x58, 0x42, 0x72, 0x6a][rng.int(5)];
      m.splices.push({ at, remove: 5, insert: [op, ...le(BigInt(huge), 4)] });
      return `hugecount op ${i}: 0x${op.toString(16)} count ${huge}`;
    }
    // Op i's own argument bytes set to 0xff (or random): the largest count it can say.
    const arg = Array.from({ length: end - at - 1 }, () => (rng.next() < 0.7 ? 0xff : rng.int(256)));
    m.splices.push({ at: at + 1, remove: arg.length, insert: arg });
    return `hugecount op ${i} (0x${ops[i][1].toString(16)}) argument ${arg.length} bytes of ~0xff`;
  }

  private intsplice(rng: Rng, m: Mutation): string {
    const ints = this.layout.pickle.ops.map((o, i) => [o, i] as const).filter(([o]) => INT_OPS.has(o[1]));
    const [, i] = ints[rng.int(ints.length)];
    return this.setInt(rng, m, i, oddValue(rng, 1000n));
  }

  private setInt(rng: Rng, m: Mutation, op: number, value: bigint): string {
    const [at, end] = this.opText(op);
    m.splices.push({ at, remove: end - at, insert: encodeInt(rng, value) });
    return `int op ${op} = ${value}`;
  }

  private view(rng: Rng, m: Mutation): string {
    const tensors = this.layout.pickle.tensors;
    const t = tensors[rng.int(tensors.length)];
    const r = rng.next();
    const huge = [2n ** 31n - 1n, 2n ** 31n, 2n ** 32n, 2n ** 40n, 2n ** 53n, 2n ** 63n - 1n, 1000000n, 100000000n][rng.int(8)];
    if (r < 0.3 && t.size.length > 0) {
      const d = rng.int(t.size.length);
      return `view stride0+huge: ${this.setInt(rng, m, t.stride[d], 0n)}, ${this.setInt(rng, m, t.size[d], huge)}`;
    }
    if (r < 0.45 && t.stride.length > 0) {
      const value = rng.next() < 0.5 ? 0n : 1n;
      return `view overlapping strides: ${t.stride.map((s) => this.setInt(rng, m, s, value)).join(", ")}`;
    }
    if (r < 0.6 && t.size.length > 0) return `view size: ${this.setInt(rng, m, t.size[rng.int(t.size.length)], oddValue(rng, huge))}`;
    if (r < 0.8) return `view offset: ${this.setInt(rng, m, t.offset, oddValue(rng, huge))}`;
    return `view storage numel: ${this.setInt(rng, m, t.numel, oddValue(rng, huge))}`;
  }

  private global(rng: Rng, m: Mutation): string {
    const globals = this.layout.pickle.ops.map((o, i) => [o, i] as const).filter(([o]) => o[1] === 0x63);
    const [, i] = globals[rng.int(globals.length)];
    const [at, end] = this.opText(i);
    const name = FORBIDDEN[rng.int(FORBIDDEN.length)];
    m.splices.push({ at: at + 1, remove: end - at - 2, insert: Array.from(name, (c) => c.charCodeAt(0)) });
    return `global op ${i} -> ${name.replace("\n", ".")}`;
  }
}

/** Boundary and random values for an integer field. */
function oddValue(rng: Rng, huge: bigint): bigint {
  const values = [0n, 1n, -1n, 2n, huge, huge + 1n, -huge, 255n, 256n, 65535n, 65536n, 2n ** 31n - 1n, 2n ** 31n, -(2n ** 31n),
    2n ** 53n + 1n, 2n ** 64n, BigInt(rng.int(1 << 20))];
  return values[rng.int(values.length)];
}

function pick<K extends string>(rng: Rng, weights: Record<K, number>): K {
  const keys = Object.keys(weights) as K[];
  let r = rng.next() * keys.reduce((s, k) => s + weights[k], 0);
  for (const k of keys) {
    r -= weights[k];
    if (r < 0) return k;
  }
  return keys[keys.length - 1];
}

/**
 * Applies `m` to `work` (a copy of the original file, restored by the returned undo function).
 * Pickle splices are applied from the last to the first; when they grow data.pkl past the free
 * bytes after it, the splices that do not fit are dropped (and the description says so).
 */
export function applyMutation(work: Uint8Array, layout: Layout, m: Mutation): { bytes: Uint8Array; undo: () => void; note: string } {
  const saved: Array<[number, Uint8Array]> = [];
  const write = (at: number, bytes: ArrayLike<number>): void => {
    if (at < 0 || at + bytes.length > work.length) return;
    saved.push([at, work.slice(at, at + bytes.length)]);
    work.set(bytes as number[], at);
  };
  let note = "";
  const pklEntry = layout.entries.find((e) => e.name === layout.pickle.entry) as LayoutEntry;
  if (m.splices.length > 0) {
    let splices = [...m.splices].sort((a, b) => b.at - a.at);
    // Overlapping splices: keep the first of each overlapping pair (in file order).
    splices = splices.filter((s, i) => i === splices.length - 1 || splices[i + 1].at + splices[i + 1].remove <= s.at);
    let growth = splices.reduce((g, s) => g + s.insert.length - s.remove, 0);
    while (growth > pklEntry.slack && splices.length > 0) {
      const dropped = splices.pop() as Splice;
      growth -= dropped.insert.length - dropped.remove;
      note = " (a pickle edit dropped: no room)";
    }
    // Splices in descending order: each one's offsets are still those of the original data.pkl.
    let pkl = work.slice(pklEntry.data, pklEntry.data + pklEntry.size);
    for (const s of splices) {
      const remove = Math.min(s.remove, pkl.length - s.at);
      const next = new Uint8Array(pkl.length - remove + s.insert.length);
      next.set(pkl.subarray(0, s.at));
      next.set(s.insert, s.at);
      next.set(pkl.subarray(s.at + remove), s.at + s.insert.length);
      pkl = next;
    }
    write(pklEntry.data, pkl);
    if (pkl.length !== pklEntry.size) {
      const size = le(BigInt(pkl.length), 4);
      for (const at of [pklEntry.local + 18, pklEntry.local + 22, pklEntry.central + 20, pklEntry.central + 24]) write(at, size);
    }
  }
  for (const e of m.edits) write(e.at, e.bytes);
  const undo = (): void => {
    for (let i = saved.length - 1; i >= 0; i--) work.set(saved[i][1], saved[i][0]);
  };
  return { bytes: work.subarray(0, m.length), undo, note };
}
