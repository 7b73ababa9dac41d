// Hand-made hostile .pth files, one per bound of the reader (src/model/torch_zip.ts, torch_pth.ts,
// torch_pickle.ts): sizes the zip declares but the file does not hold, entry counts no directory
// can hold, deflate bombs, views that name billions of elements over a tiny storage, integers of
// megabytes, a stack-overflowing APPENDS. Each is one CheckpointError (a UserError) naming the file,
// on one line. The seeded fuzz over a real B1 checkpoint is test/pth_fuzz.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { unzipSync, zipSync } from "fflate";
import { UserError } from "../src/errors";
import { CheckpointError, parseCheckpoint, StateDict } from "../src/model/torch_pth";
import { fixture } from "./helpers/torch_fixture";

const latin1 = (...parts: string[]): Uint8Array => new Uint8Array(Buffer.from(parts.join(""), "latin1"));
const le = (n: number, bytes: number): string =>
  Array.from({ length: bytes }, (_, i) => String.fromCharCode(Number((BigInt(n) >> BigInt(8 * i)) & 0xffn))).join("");

interface TensorOps { numel?: string; offset?: string; size?: string; stride?: string; storage?: string }
/** Protocol-2 pickle of {"w": _rebuild_tensor_v2(storage "0", offset, size, stride)}; each part is raw pickle ops. */
function tensorPickle(o: TensorOps = {}): Uint8Array {
  return latin1("\x80\x02}q\x00X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n",
    `((X\x07\x00\x00\x00storagectorch\n${o.storage ?? "FloatStorage"}\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpu${o.numel ?? "K\x04"}tQ`,
    `${o.offset ?? "K\x00"}${o.size ?? "K\x04\x85"}${o.stride ?? "K\x01\x85"}\x89)tRs.`);
}
const floats = (...v: number[]): Uint8Array => new Uint8Array(new Float32Array(v).buffer);
const stored = (pkl: Uint8Array, storage: Uint8Array = floats(1, 2, 3, 4)): Uint8Array =>
  zipSync({ "m/data.pkl": pkl, "m/data/0": storage }, { level: 0 });

function refused(bytes: Uint8Array, label: string, pattern: RegExp): void {
  assert.throws(() => parseCheckpoint(bytes, label), (e: Error) => {
    assert.ok(e instanceof CheckpointError && e instanceof UserError, String(e.stack));
    assert.ok(e.message.startsWith(`checkpoint ${label}: `), e.message);
    assert.doesNotMatch(e.message, /\n/);
    assert.match(e.message, pattern);
    return true;
  });
}

const values = (state: StateDict, key = "w"): number[] => Array.from(state.get(key)?.data as Float32Array);

/** Offset of the central header of `name` (found by signature and name). */
function centralHeader(zip: Uint8Array, name: string): number {
  const view = Buffer.from(zip.buffer, zip.byteOffset, zip.byteLength);
  for (let at = view.indexOf("PK\x01\x02", 0, "latin1"); at >= 0; at = view.indexOf("PK\x01\x02", at + 1, "latin1")) {
    const n = view.readUInt16LE(at + 28);
    if (view.toString("latin1", at + 46, at + 46 + n) === name) return at;
  }
  throw new Error(`no central header for ${name}`);
}
function patch(zip: Uint8Array, at: number, value: number, bytes: 2 | 4 | 8): Uint8Array {
  const out = Uint8Array.from(zip);
  out.set(latin1(le(value, bytes)), at);
  return out;
}

test("sizes the zip declares but the file does not hold are refused before anything is allocated", () => {
  const zip = stored(tensorPickle());
  const c = centralHeader(zip, "m/data/0");
  // 4 GB stored in a file of a few hundred bytes (fflate's unzipSync allocated it first).
  refused(patch(patch(zip, c + 20, 0xfffffff0, 4), c + 24, 0xfffffff0, 4), "huge.pth", /4294967280 bytes of data at byte \d+ lies outside the \d+-byte file/);
  // The same 4 GB declared deflated from 16 bytes: more than deflate can produce.
  refused(patch(patch(zip, c + 10, 8, 2), c + 24, 0xfffffff0, 4), "ratio.pth", /declares 4294967280 bytes from 16 compressed/);
  refused(patch(zip, c + 42, 0x7fffffff, 4), "offset.pth", /local header at byte 2147483647 lies outside/);
  refused(patch(zip, c + 24, 12, 4), "mismatch.pth", /is stored but declares 12 bytes in 16/);
  refused(patch(zip, c + 10, 12, 2), "bzip2.pth", /uses compression method 12; only stored \(0\) and deflate \(8\)/);
  refused(patch(zip, c + 8, 1, 2), "encrypted.pth", /is encrypted/);
});

test("entry counts the central directory cannot hold are refused without looping over them", () => {
  // torch.save output has zip64 end records, read when the end record's count says 0xffff.
  const real = fixture();
  const end64 = Buffer.from(real).lastIndexOf("PK\x06\x06", undefined, "latin1");
  const realEnd = Buffer.from(real).lastIndexOf("PK\x05\x06", undefined, "latin1");
  assert.equal(parseCheckpoint(patch(real, realEnd + 10, 0xffff, 2), "zip64.pth").size, 11, "the zip64 record is read");
  refused(patch(patch(real, realEnd + 10, 0xffff, 2), end64 + 32, 2 ** 40, 8), "count64.pth", /1099511627776 entries cannot fit a \d+-byte central directory/);
  const zip = stored(tensorPickle());
  const end = Buffer.from(zip).lastIndexOf("PK\x05\x06", undefined, "latin1");
  refused(patch(zip, end + 10, 60000, 2), "count.pth", /60000 entries cannot fit/);
  refused(patch(zip, end + 16, 0xfffffff0, 4), "dir.pth", /central directory \(\d+ bytes at 4294967280\) runs past its end record/);
});

test("duplicate and overlapping entries are refused", () => {
  const zip = zipSync({ "m/data.pkl": tensorPickle(), "m/data/0": floats(1, 2, 3, 4), "m/data/1": floats(5) }, { level: 0 });
  const one = centralHeader(zip, "m/data/1");
  const renamed = Uint8Array.from(zip);
  renamed[one + 46 + 7] = "0".charCodeAt(0);
  refused(renamed, "twice.pth", /entry "m\/data\/0" is listed twice/);
  // data/0's central header pointing at data.pkl's local header: both read the same bytes.
  refused(patch(zip, centralHeader(zip, "m/data/0") + 42, 0, 4), "overlap.pth", /entries "m\/data\.pkl" and "m\/data\/0" overlap/);
});

test("deflate: a re-zipped checkpoint reads back the same; a bomb stops at its declared size", () => {
  const real = fixture();
  const entries = unzipSync(real);
  const deflated = zipSync(entries, { level: 9 });
  const a = parseCheckpoint(real, "stored.pth");
  const b = parseCheckpoint(deflated, "deflated.pth");
  assert.deepEqual([...b.keys()], [...a.keys()]);
  for (const [key, t] of a) assert.deepEqual(Array.from(b.get(key)?.data as ArrayLike<unknown>), Array.from(t.data as ArrayLike<unknown>), key);
  // 64 MB of zeros deflate to ~64 KB; declared as the 16 bytes the tensor needs.
  const bomb = zipSync({ "m/data.pkl": tensorPickle(), "m/data/0": [new Uint8Array(64 << 20), { level: 9 }] });
  const c = centralHeader(bomb, "m/data/0");
  refused(patch(bomb, c + 24, 16, 4), "bomb.pth", /zip entry "m\/data\/0" inflates to more than its declared 16 bytes/);
  refused(patch(bomb, c + 24, 1 << 30, 4), "bomb2.pth", /declares 1073741824 bytes from \d+ compressed/);
});

test("views: stride 0 over a tiny storage, past the end, negative or fractional numbers", () => {
  const one = floats(7);
  // torch.tensor(7.).expand(3): a legitimate stride-0 view.
  assert.deepEqual(values(parseCheckpoint(stored(tensorPickle({ numel: "K\x01", size: "K\x03\x85", stride: "K\x00\x85" }), one), "expand.pth")), [7, 7, 7]);
  refused(stored(tensorPickle({ numel: "K\x01", size: "J\xff\xff\xff\x7f\x85", stride: "K\x00\x85" }), one), "expand31.pth",
    /tensor "w": size \[2147483647\] names more elements than this 4-byte storage's checkpoint may expand to/);
  // Rows of 80 (copied or filled whole), of 2 and of 1 (element by element) out of 160 elements.
  const storage = floats(...Array.from({ length: 160 }, (_, i) => i));
  const view = (size: string, stride: string, offset = "K\x00"): number[] =>
    values(parseCheckpoint(stored(tensorPickle({ numel: "K\xa0", offset, size, stride }), storage), "rows.pth"));
  const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);
  assert.deepEqual(view("K\x02KP\x86", "K\x00K\x01\x86"), [...range(0, 80), ...range(0, 80)], "expanded rows");
  assert.deepEqual(view("K\x02KF\x86", "KPK\x01\x86", "K\x02"), [...range(2, 70), ...range(82, 70)], "sliced rows");
  assert.deepEqual(view("K\x02KP\x86", "K\x01K\x00\x86"), [...Array(80).fill(0), ...Array(80).fill(1)], "filled rows");
  assert.deepEqual(view("KPK\x02\x86", "K\x01KP\x86"), range(0, 80).flatMap((i) => [i, i + 80]), "transposed");
  assert.deepEqual(view("K\x03K\x01K\x02\x87", "K\x00K\x07K\x05\x87", "K\x04"), [4, 9, 4, 9, 4, 9], "size-1 dims skipped");
  refused(stored(tensorPickle({ size: "K\x05\x85" })), "past.pth", /view \(offset 0, size \[5\], stride \[1\]\) reaches past its storage of 4 elements/);
  refused(stored(tensorPickle({ offset: "K\x01" })), "offset.pth", /reaches past its storage of 4 elements/);
  refused(stored(tensorPickle({ numel: "K\x05" })), "numel.pth", /storage 0 has 16 bytes, its 5 float32 elements need 20/);
  refused(stored(tensorPickle({ numel: "J\xff\xff\xff\xff" })), "negative.pth", /malformed storage persistent id \(key "0", size number -1\)/);
  refused(stored(tensorPickle({ offset: "G?\xe0\x00\x00\x00\x00\x00\x00" })), "half.pth", /malformed _rebuild_tensor_v2 arguments \(storage a storage, offset number 0.5\)/);
  refused(stored(tensorPickle({ stride: "\x8a\x01\xff\x85" })), "stride.pth", /tensor stride a tuple\/list is not a tuple of non-negative integers/);
  refused(stored(tensorPickle({ size: `\x8a\x09${le(0, 8)}\x01\x85` })), "big.pth", /tensor size a tuple\/list is not a tuple of non-negative integers/);
});

test("integers: LONG1 decodes, a LONG4 of 8 MB is refused at once (it was quadratic)", { timeout: 20_000 }, () => {
  assert.deepEqual(values(parseCheckpoint(stored(tensorPickle({ numel: "\x8a\x01\x04", offset: "\x8a\x00" })), "long1.pth")), [1, 2, 3, 4]);
  const eightMb = 8 << 20;
  refused(stored(tensorPickle({ offset: `\x8b${le(eightMb, 4)}${"\x01".repeat(eightMb)}` })), "long4.pth",
    /data\.pkl: a 8388608-byte integer at offset \d+; a state_dict has none over 16 bytes/);
});

test("APPENDS of 500,000 values is a CheckpointError, not a stack overflow", () => {
  const pkl = latin1("\x80\x02](", "K\x01".repeat(500_000), "e.");
  refused(zipSync({ "m/data.pkl": pkl }, { level: 0 }), "appends.pth", /data\.pkl holds a tuple\/list, not a state_dict/);
});

test("names from the file are shown on one line, clipped", () => {
  const key = `a\nb${"x".repeat(200)}`;
  const pkl = latin1("\x80\x02}X", le(key.length, 4), key, "K\x03s.");
  refused(zipSync({ "m/data.pkl": pkl }, { level: 0 }), "name.pth", /state_dict entry "a\\u000abx{74}\.\.\." is number 3, not a tensor/);
});
