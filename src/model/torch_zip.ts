// The zip container of a torch.save checkpoint (torch_pth.ts), read defensively: the file may come
// from anywhere. We parse the central directory ourselves and check every number in it against
// the file before anything is allocated: the entry count against the directory's size, each
// entry's offset and sizes against the bytes that are really there. Entry data is read only for
// the entries the caller asks for (torch_pth.ts asks for data.pkl, byteorder and the storages the
// pickle references), and a stored entry is a view into the file, never a copy.
//
// torch.save writes every entry stored (method 0), 64-byte aligned, with zip64 records. A re-zipped
// checkpoint may hold deflated entries (torch.load reads those too), so method 8 is accepted with
// bounds: an entry's declared size may not exceed what deflate can produce from its compressed
// size (1032:1), it is inflated chunk by chunk and stopped as soon as the output passes the
// declared size, and one checkpoint inflates to at most MAX_INFLATED_BYTES in all.
// CRC-32s are not checked: torch.save can write files without them (set_crc32_options) and
// torch.load does not check them either.
//
// May touch: nothing but the bytes it is given; errors go through `fail`.
import { Inflate } from "fflate";
import { clip, Fail } from "./torch_pickle";

export interface ZipEntry {
  name: string;
  /** 0 (stored) or 8 (deflated); anything else is refused when the entry is read. */
  method: number;
  flags: number;
  compressedSize: number;
  size: number;
  /** Offset of the entry's local header. */
  localOffset: number;
}

/** Deflate's largest expansion: one 258-byte match per 2 bits, i.e. just over 1032:1. */
const DEFLATE_MAX_RATIO = 1032;
/** The most one checkpoint may inflate to, all deflated entries together (torch.save deflates none). */
export const MAX_INFLATED_BYTES = 1 << 30;
const INFLATE_CHUNK = 1 << 16;

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_END = 0x06054b50;
const SIG_END64 = 0x06064b50;
const SIG_END64_LOCATOR = 0x07064b50;
const CENTRAL_HEADER = 46;
const LOCAL_HEADER = 30;
const END_RECORD = 22;

/** Little-endian reads that fail (instead of reading garbage) outside [0, limit). */
class Reader {
  private readonly view: DataView;
  constructor(readonly bytes: Uint8Array, private readonly fail: Fail) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  check(at: number, n: number, what: string): void {
    if (!(at >= 0 && at + n <= this.bytes.length)) {
      this.fail(`the zip is truncated or corrupt (${what} at byte ${at} lies outside the ${this.bytes.length}-byte file); download or save it again`);
    }
  }
  u16(at: number, what: string): number {
    this.check(at, 2, what);
    return this.view.getUint16(at, true);
  }
  u32(at: number, what: string): number {
    this.check(at, 4, what);
    return this.view.getUint32(at, true);
  }
  u64(at: number, what: string): number {
    this.check(at, 8, what);
    const v = this.view.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`the zip is corrupt (${what} is ${v}); download or save it again`);
    return Number(v);
  }
}

/** The central directory: every entry's name, method and sizes (no data is read). */
function readZipDirectory(bytes: Uint8Array, fail: Fail): Map<string, ZipEntry> {
  const corrupt = (what: string): never => fail(`the zip is truncated or corrupt (${what}); download or save it again`);
  const r = new Reader(bytes, fail);
  // The end record is the last 22 bytes plus a comment of at most 65535 bytes.
  let end = -1;
  for (let at = bytes.length - END_RECORD; at >= 0 && at >= bytes.length - END_RECORD - 0xffff; at--) {
    if (bytes[at] === 0x50 && bytes[at + 1] === 0x4b && r.u32(at, "end record") === SIG_END) {
      end = at;
      break;
    }
  }
  if (end < 0) return corrupt("no end-of-central-directory record");
  let count = r.u16(end + 10, "entry count");
  let dirSize = r.u32(end + 12, "directory size");
  let dirOffset = r.u32(end + 16, "directory offset");
  let dirLimit = end;
  if (count === 0xffff || dirSize === 0xffffffff || dirOffset === 0xffffffff) {
    // zip64: a locator just before the end record points at the zip64 end record.
    if (end < 20 || r.u32(end - 20, "zip64 locator") !== SIG_END64_LOCATOR) return corrupt("zip64 locator missing");
    const end64 = r.u64(end - 12, "zip64 end record offset");
    if (end64 + 56 > end - 20 || r.u32(end64, "zip64 end record") !== SIG_END64) return corrupt("zip64 end record missing");
    count = r.u64(end64 + 32, "zip64 entry count");
    dirSize = r.u64(end64 + 40, "zip64 directory size");
    dirOffset = r.u64(end64 + 48, "zip64 directory offset");
    dirLimit = end64;
  }
  if (dirOffset + dirSize > dirLimit) {
    return corrupt(`central directory (${dirSize} bytes at ${dirOffset}) runs past its end record at ${dirLimit}`);
  }
  // Each entry takes at least 46 bytes: a count the directory cannot hold is refused before looping.
  if (count * CENTRAL_HEADER > dirSize) return corrupt(`${count} entries cannot fit a ${dirSize}-byte central directory`);

  const entries = new Map<string, ZipEntry>();
  const dir = new Reader(bytes.subarray(0, dirOffset + dirSize), fail);
  let at = dirOffset;
  for (let i = 0; i < count; i++) {
    if (dir.u32(at, `central header ${i}`) !== SIG_CENTRAL) return corrupt(`central header ${i} at byte ${at} has a bad signature`);
    const flags = dir.u16(at + 8, "flags");
    const method = dir.u16(at + 10, "method");
    let compressedSize = dir.u32(at + 20, "compressed size");
    let size = dir.u32(at + 24, "size");
    const nameLength = dir.u16(at + 28, "name length");
    const extraLength = dir.u16(at + 30, "extra length");
    const commentLength = dir.u16(at + 32, "comment length");
    let localOffset = dir.u32(at + 42, "local header offset");
    const nameAt = at + CENTRAL_HEADER;
    dir.check(nameAt, nameLength + extraLength + commentLength, `central header ${i}'s name and extra fields`);
    const name = new TextDecoder(flags & 0x800 ? "utf-8" : "latin1").decode(bytes.subarray(nameAt, nameAt + nameLength));
    // zip64 extra field (id 1): the 64-bit values of the fields that hold 0xffffffff, in this order.
    const extraEnd = nameAt + nameLength + extraLength;
    for (let x = nameAt + nameLength; x + 4 <= extraEnd;) {
      const id = dir.u16(x, "extra id");
      const length = dir.u16(x + 2, "extra length");
      if (x + 4 + length > extraEnd) return corrupt(`extra field of "${clip(name)}" runs past its header`);
      if (id === 1) {
        let v = x + 4;
        const next = (what: string): number => {
          if (v + 8 > x + 4 + length) return corrupt(`zip64 field of "${clip(name)}" lacks its ${what}`);
          v += 8;
          return dir.u64(v - 8, `zip64 ${what}`);
        };
        if (size === 0xffffffff) size = next("size");
        if (compressedSize === 0xffffffff) compressedSize = next("compressed size");
        if (localOffset === 0xffffffff) localOffset = next("offset");
      }
      x += 4 + length;
    }
    if (entries.has(name)) return corrupt(`entry "${clip(name)}" is listed twice`);
    entries.set(name, { name, method, flags, compressedSize, size, localOffset });
    at = extraEnd + commentLength;
  }
  return entries;
}

/**
 * A zip's entries, read one at a time on request. Each read is checked against the file, and
 * `checkNoOverlap` checks the entries read so far against each other (overlapping entries are how
 * zip bombs multiply their output). Stored entries are views into the file's bytes, not copies.
 */
export class ZipArchive {
  readonly entries: Map<string, ZipEntry>;
  private readonly reader: Reader;
  private readonly spans: Array<{ from: number; to: number; name: string }> = [];
  private readonly read = new Map<string, Uint8Array>();
  private inflated = 0;

  constructor(private readonly bytes: Uint8Array, private readonly fail: Fail) {
    this.entries = readZipDirectory(bytes, fail);
    this.reader = new Reader(bytes, fail);
  }

  /** The data of entry `name` (which must exist); the same bytes again when asked twice. */
  data(name: string): Uint8Array {
    const known = this.read.get(name);
    if (known !== undefined) return known;
    const e = this.entries.get(name) as ZipEntry;
    const { reader: r, fail } = this;
    const where = `zip entry "${clip(e.name)}"`;
    if (r.u32(e.localOffset, `${where}'s local header`) !== SIG_LOCAL) {
      fail(`the zip is corrupt (${where}: no local header at byte ${e.localOffset}); download or save it again`);
    }
    const dataAt = e.localOffset + LOCAL_HEADER + r.u16(e.localOffset + 26, "name length") + r.u16(e.localOffset + 28, "extra length");
    r.check(dataAt, e.compressedSize, `${where}'s ${e.compressedSize} bytes of data`);
    this.spans.push({ from: e.localOffset, to: dataAt + e.compressedSize, name: e.name });
    const raw = this.bytes.subarray(dataAt, dataAt + e.compressedSize);
    let data = raw;
    if (e.flags & 0x1) fail(`${where} is encrypted; torch.save never encrypts, save it again`);
    if (e.method === 0) {
      if (e.size !== e.compressedSize) fail(`the zip is corrupt (${where} is stored but declares ${e.size} bytes in ${e.compressedSize}); download or save it again`);
    } else if (e.method === 8) {
      if (e.size > DEFLATE_MAX_RATIO * e.compressedSize + 1024 || this.inflated + e.size > MAX_INFLATED_BYTES) {
        fail(`${where} declares ${e.size} bytes from ${e.compressedSize} compressed (more than deflate can produce, ` +
          `or past the ${MAX_INFLATED_BYTES}-byte limit on inflated data); a torch.save file stores its entries uncompressed`);
      }
      this.inflated += e.size;
      data = inflate(raw, e.size, where, fail);
    } else {
      fail(`${where} uses compression method ${e.method}; only stored (0) and deflate (8) are read, and torch.save stores`);
    }
    this.read.set(name, data);
    return data;
  }

  /** Fails if any two entries read so far share a byte. */
  checkNoOverlap(): void {
    const spans = [...this.spans].sort((a, b) => a.from - b.from);
    for (let i = 1; i < spans.length; i++) {
      if (spans[i].from < spans[i - 1].to) {
        this.fail(`the zip is corrupt (entries "${clip(spans[i - 1].name)}" and "${clip(spans[i].name)}" overlap); download or save it again`);
      }
    }
  }
}

/** Inflates chunk by chunk, stopping as soon as the output passes `size` (memory follows the real output). */
function inflate(raw: Uint8Array, size: number, where: string, fail: Fail): Uint8Array {
  const chunks: Uint8Array[] = [];
  let written = 0;
  let done = false;
  const inflater = new Inflate((chunk, final) => {
    written += chunk.length;
    if (written > size) fail(`${where} inflates to more than its declared ${size} bytes; download or save it again`);
    chunks.push(chunk);
    done = final;
  });
  try {
    for (let at = 0; at < raw.length && !done; at += INFLATE_CHUNK) {
      const end = Math.min(raw.length, at + INFLATE_CHUNK);
      inflater.push(raw.subarray(at, end), end === raw.length);
    }
    if (raw.length === 0) inflater.push(raw, true);
  } catch (e) {
    if (!(e instanceof Error) || !("code" in e)) throw e; // our own fail() (a CheckpointError), or a bug
    fail(`${where} does not inflate (${e.message}); download or save it again`);
  }
  if (written !== size) fail(`${where} inflates to ${written} bytes, not its declared ${size}; download or save it again`);
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
