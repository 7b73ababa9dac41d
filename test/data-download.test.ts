// downloadFile against a local HTTP server on 127.0.0.1, the progress printer, and ensureCifar10
// with a real .tar.gz of a synthetic batch folder passed as the local copy.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "crypto";
import * as fs from "fs";
import * as http from "http";
import { AddressInfo } from "net";
import * as os from "os";
import * as path from "path";
import * as tar from "tar";
import { ChecksumError, DownloadError, downloadFile, hashFile, progressPrinter } from "../src/util/download";
import { BATCH_DIR_NAME, BATCH_FILES, CIFAR10_TARBALL, DataError, TARBALL_ENV, ensureCifar10 } from "../src/data/cifar10";
import { isSynthetic, writeSyntheticCifar10 } from "../src/data/synthetic";
import { main, parseArgs } from "../src/data/main";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "bias-data-download-"));
let counter = 0;
const freshDir = (): string => {
  const dir = path.join(root, `case-${counter++}`);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
};

// 300 kB of varied bytes: several chunks on the wire, so progress is reported more than once.
const payload = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251));
const sha256 = createHash("sha256").update(payload).digest("hex");
const md5 = createHash("md5").update(payload).digest("hex");

let server: http.Server;
let base = "";
const requests: string[] = [];

before(async () => {
  server = http.createServer((req, res) => {
    requests.push(req.url ?? "");
    if (req.url === "/file.bin") {
      res.writeHead(200, { "content-length": payload.length });
      res.end(payload);
    } else if (req.url === "/no-length.bin") {
      res.writeHead(200); // chunked: the size is unknown until the end
      res.write(payload.subarray(0, 100_000));
      res.end(payload.subarray(100_000));
    } else if (req.url === "/cut.bin") {
      res.writeHead(200, { "content-length": payload.length });
      res.write(payload.subarray(0, 1000), () => res.destroy());
    } else {
      res.writeHead(404);
      res.end("not here");
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  fs.rmSync(root, { recursive: true, force: true });
});

/** Files in `dir` other than `keep`: temp files must never be left behind. */
const leftovers = (dir: string, keep: string[] = []): string[] => fs.readdirSync(dir).filter((f) => !keep.includes(f));

describe("downloadFile", () => {
  test("downloads, verifies and reports progress; a second call is a no-op", async () => {
    const dir = freshDir();
    const dest = path.join(dir, "file.bin");
    const calls: Array<[number, number | null]> = [];
    const result = await downloadFile({ url: `${base}/file.bin`, dest, hash: { algorithm: "sha256", expected: sha256 },
      onProgress: (done, total) => calls.push([done, total]) });
    assert.deepEqual(result, { path: dest, downloaded: true });
    assert.ok(fs.readFileSync(dest).equals(payload));
    assert.deepEqual(leftovers(dir, ["file.bin"]), []);
    assert.deepEqual(calls[calls.length - 1], [payload.length, payload.length]);
    assert.ok(calls.every(([, total]) => total === payload.length));
    assert.ok(calls.every(([done], i) => i === 0 || done >= calls[i - 1][0]), "progress went backwards");

    const seen = requests.length;
    const again = await downloadFile({ url: `${base}/file.bin`, dest, hash: { algorithm: "sha256", expected: sha256 } });
    assert.deepEqual(again, { path: dest, downloaded: false });
    assert.equal(requests.length, seen, "the second call hit the network");
  });

  test("a hash prefix is enough, md5 works, and an unknown size ends with done === total", async () => {
    const dir = freshDir();
    const dest = path.join(dir, "x.bin");
    const calls: Array<[number, number | null]> = [];
    await downloadFile({ url: `${base}/no-length.bin`, dest, hash: { algorithm: "md5", expected: md5.slice(0, 8).toUpperCase() },
      onProgress: (done, total) => calls.push([done, total]) });
    assert.ok(fs.readFileSync(dest).equals(payload));
    assert.equal(calls[0][1], null);
    assert.deepEqual(calls[calls.length - 1], [payload.length, payload.length]);
  });

  test("a wrong checksum names the file and both hashes, and leaves nothing behind", async () => {
    const dir = freshDir();
    const dest = path.join(dir, "file.bin");
    const wrong = "0".repeat(64);
    await assert.rejects(downloadFile({ url: `${base}/file.bin`, dest, hash: { algorithm: "sha256", expected: wrong } }), (e: Error) =>
      e instanceof ChecksumError && e.message.includes(dest) && e.message.includes(wrong) && e.message.includes(sha256));
    assert.deepEqual(leftovers(dir), []);
  });

  test("a corrupted file at dest is replaced by a verified download", async () => {
    const dir = freshDir();
    const dest = path.join(dir, "file.bin");
    fs.writeFileSync(dest, "garbage");
    const result = await downloadFile({ url: `${base}/file.bin`, dest, hash: { algorithm: "sha256", expected: sha256 } });
    assert.equal(result.downloaded, true);
    assert.ok(fs.readFileSync(dest).equals(payload));
  });

  test("network failures name the URL and suggest a local copy; nothing is left behind", async () => {
    const dir = freshDir();
    const dest = path.join(dir, "file.bin");
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", () => resolve()));
    const deadUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/file.bin`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const hash = { algorithm: "sha256" as const, expected: sha256 };
    await assert.rejects(downloadFile({ url: deadUrl, dest, hash, localCopyHint: "--local PATH" }), (e: Error) =>
      e instanceof DownloadError && e.message.includes(deadUrl) && e.message.includes("local copy (--local PATH)") && e.message.includes("ECONNREFUSED"));
    await assert.rejects(downloadFile({ url: `${base}/missing.bin`, dest, hash }), (e: Error) =>
      e instanceof DownloadError && e.message.includes("HTTP 404"));
    await assert.rejects(downloadFile({ url: `${base}/cut.bin`, dest, hash }), (e: Error) =>
      e instanceof DownloadError && !(e instanceof ChecksumError) && e.message.includes(`${base}/cut.bin`));
    assert.deepEqual(leftovers(dir), []);
  });

  test("an injected fetch that throws is reported the same way", async () => {
    const dir = freshDir();
    const failing = async (): Promise<never> => {
      // Node's fetch throws like this when DNS fails (the ES2020 lib has no Error `cause` option).
      throw Object.assign(new TypeError("fetch failed"), { cause: Object.assign(new Error("getaddrinfo ENOTFOUND example.invalid"), { code: "ENOTFOUND" }) });
    };
    await assert.rejects(downloadFile({ url: "https://example.invalid/f", dest: path.join(dir, "f"),
      hash: { algorithm: "md5", expected: md5 }, fetchImpl: failing }), /could not download https:\/\/example\.invalid\/f: fetch failed \(ENOTFOUND/);
  });

  test("a local copy is verified and copied without the network", async () => {
    const dir = freshDir();
    const local = path.join(freshDir(), "copy.bin");
    fs.writeFileSync(local, payload);
    const dest = path.join(dir, "file.bin");
    const seen = requests.length;
    const result = await downloadFile({ url: `${base}/file.bin`, dest, hash: { algorithm: "sha256", expected: sha256 }, localCopy: local });
    assert.deepEqual(result, { path: dest, downloaded: false });
    assert.ok(fs.readFileSync(dest).equals(payload));
    assert.equal(requests.length, seen);
    assert.deepEqual(leftovers(dir, ["file.bin"]), []);
  });

  test("a bad or missing local copy is rejected and nothing lands at dest", async () => {
    const dir = freshDir();
    const local = path.join(freshDir(), "copy.bin");
    fs.writeFileSync(local, payload.subarray(1));
    const dest = path.join(dir, "file.bin");
    const hash = { algorithm: "sha256" as const, expected: sha256 };
    await assert.rejects(downloadFile({ url: `${base}/file.bin`, dest, hash, localCopy: local }), (e: Error) =>
      e instanceof ChecksumError && e.message.includes(local) && e.message.includes(sha256));
    await assert.rejects(downloadFile({ url: `${base}/file.bin`, dest, hash, localCopy: path.join(dir, "absent") }), /does not exist/);
    assert.deepEqual(leftovers(dir), []);
  });

  test("malformed expected hashes are refused up front", async () => {
    const dest = path.join(freshDir(), "f");
    await assert.rejects(downloadFile({ url: `${base}/file.bin`, dest, hash: { algorithm: "md5", expected: "abc" } }), /8 to 32 hex digits/);
    await assert.rejects(downloadFile({ url: `${base}/file.bin`, dest, hash: { algorithm: "sha256", expected: "xyz12345" } }), /hex digits/);
  });
});

describe("progressPrinter", () => {
  const fakeStream = (isTTY: boolean): { stream: NodeJS.WritableStream & { isTTY?: boolean }; out: string[] } => {
    const out: string[] = [];
    const stream = { isTTY, write: (s: string) => { out.push(s); return true; } } as unknown as NodeJS.WritableStream & { isTTY?: boolean };
    return { stream, out };
  };
  const MB = 1024 * 1024;

  test("in logs: one line per 10%, with size, percent and speed", () => {
    const { stream, out } = fakeStream(false);
    let t = 0;
    const print = progressPrinter("cifar", { stream, now: () => t });
    for (let pct = 0; pct <= 100; pct++) {
      t = pct * 100; // 100 ms per percent of 100 MB: 10 MB/s
      print(pct * MB, 100 * MB);
    }
    assert.equal(out.length, 11);
    assert.equal(out[5], "cifar: 50.0 / 100.0 MB (50%) 10.0 MB/s\n");
    assert.equal(out[10], "cifar: 100.0 / 100.0 MB (100%) 10.0 MB/s\n");
  });

  test("on a terminal: one line rewritten with \\r, throttled, ending with a newline", () => {
    const { stream, out } = fakeStream(true);
    let t = 0;
    const print = progressPrinter("w", { stream, now: () => t });
    for (let i = 1; i <= 20; i++) {
      t = i * 50; // 50 ms apart: at most every 4th update is shown
      print(i * MB, 20 * MB);
    }
    assert.ok(out.every((s) => s.startsWith("\r")));
    assert.ok(out.length >= 5 && out.length <= 7, `${out.length} updates`);
    assert.equal(out[out.length - 1], "\rw: 20.0 / 20.0 MB (100%) 20.0 MB/s\n");
    print(20 * MB, 20 * MB);
    assert.equal(out.filter((s) => s.endsWith("\n")).length, 1, "printed past the end");
  });
});

describe("ensureCifar10 from a local tarball", () => {
  /** A real cifar-10-binary.tar.gz holding a small synthetic batch folder, and its md5. */
  async function makeTarball(): Promise<{ tarball: string; md5: string; source: string }> {
    const src = freshDir();
    const source = writeSyntheticCifar10(src, { perTrainBatch: 20, testCount: 20, seed: 5 });
    const tarball = path.join(freshDir(), CIFAR10_TARBALL);
    await tar.c({ gzip: true, file: tarball, cwd: src }, [BATCH_DIR_NAME]);
    return { tarball, md5: await hashFile(tarball, "md5"), source };
  }

  test("extracts into place atomically; a second call does nothing", async () => {
    const { tarball, md5: expectedMd5, source } = await makeTarball();
    const dataDir = path.join(freshDir(), "data");
    const dir = await ensureCifar10({ dataDir, localCopy: tarball, expectedMd5 });
    assert.equal(dir, path.join(dataDir, BATCH_DIR_NAME));
    for (const name of BATCH_FILES) assert.ok(fs.readFileSync(path.join(dir, name)).equals(fs.readFileSync(path.join(source, name))), name);
    // The synthetic marker travelled with the batch files, so the result is still labelled synthetic.
    assert.ok(isSynthetic(dir));
    assert.deepEqual(fs.readdirSync(dataDir).sort(), [BATCH_DIR_NAME, CIFAR10_TARBALL].sort(), "temporary folders left behind");
    const mtime = fs.statSync(path.join(dir, "data_batch_1.bin")).mtimeMs;
    // The second call must not even look at the (now missing) local copy or the tarball.
    fs.rmSync(path.join(dataDir, CIFAR10_TARBALL));
    assert.equal(await ensureCifar10({ dataDir, localCopy: path.join(root, "gone.tar.gz"), expectedMd5 }), dir);
    assert.equal(fs.statSync(path.join(dir, "data_batch_1.bin")).mtimeMs, mtime);
  });

  test("a verified tarball already in the data folder is used without the network", async () => {
    const { tarball, md5: expectedMd5 } = await makeTarball();
    const dataDir = freshDir();
    fs.copyFileSync(tarball, path.join(dataDir, CIFAR10_TARBALL));
    const dir = await ensureCifar10({ dataDir, expectedMd5, url: `${base}/unreachable.tar.gz` });
    assert.equal(fs.statSync(path.join(dir, "data_batch_5.bin")).size, 20 * 3073);
    assert.ok(!requests.includes("/unreachable.tar.gz"));
  });

  test(`the local copy can come from $${TARBALL_ENV}`, async () => {
    const { tarball, md5: expectedMd5 } = await makeTarball();
    const dataDir = freshDir();
    process.env[TARBALL_ENV] = tarball;
    try {
      const dir = await ensureCifar10({ dataDir, expectedMd5 });
      assert.equal(fs.statSync(path.join(dir, "test_batch.bin")).size, 20 * 3073);
    } finally {
      delete process.env[TARBALL_ENV];
    }
  });

  test("a corrupted tarball fails the checksum and leaves nothing behind", async () => {
    const { tarball, md5: expectedMd5 } = await makeTarball();
    const bytes = fs.readFileSync(tarball);
    bytes[bytes.length >> 1] ^= 0xff;
    fs.writeFileSync(tarball, bytes);
    const dataDir = freshDir();
    await assert.rejects(ensureCifar10({ dataDir, localCopy: tarball, expectedMd5 }), (e: Error) =>
      e instanceof ChecksumError && e.message.includes(tarball) && e.message.includes(expectedMd5));
    assert.deepEqual(fs.readdirSync(dataDir), []);
  });

  test("the official md5 is the default: a tarball of anything else is refused", async () => {
    const { tarball } = await makeTarball();
    const dataDir = freshDir();
    await assert.rejects(ensureCifar10({ dataDir, localCopy: tarball }), /expected c32a1d4ab5d03f1284b67883e8d87530/);
    assert.deepEqual(fs.readdirSync(dataDir), []);
  });

  test("a verified tarball without all batch files is rejected and nothing incomplete lands", async () => {
    const src = freshDir();
    const batchDir = writeSyntheticCifar10(src, { perTrainBatch: 10, testCount: 10 });
    fs.rmSync(path.join(batchDir, "data_batch_4.bin"));
    const tarball = path.join(freshDir(), CIFAR10_TARBALL);
    await tar.c({ gzip: true, file: tarball, cwd: src }, [BATCH_DIR_NAME]);
    const dataDir = freshDir();
    await assert.rejects(ensureCifar10({ dataDir, localCopy: tarball, expectedMd5: await hashFile(tarball, "md5") }), (e: Error) =>
      e instanceof DataError && e.message.includes("data_batch_4.bin is missing"));
    assert.deepEqual(fs.readdirSync(dataDir), [CIFAR10_TARBALL]);
  });
});

describe("make data entry point", () => {
  test("parses its flags and refuses unknown ones", () => {
    assert.deepEqual(parseArgs([]), { dir: "data", local: null, synthetic: false });
    assert.deepEqual(parseArgs(["--dir", "d", "--local", "x.tgz"]), { dir: "d", local: "x.tgz", synthetic: false });
    assert.deepEqual(parseArgs(["--synthetic"]), { dir: "data", local: null, synthetic: true });
    assert.throws(() => parseArgs(["--local"]), /--local <value>' argument missing/);
    assert.throws(() => parseArgs(["--fast"]), /Unknown option '--fast'/);
  });

  test("a wrong local copy exits 2 with one error line naming the file, and writes nothing", async () => {
    const dataDir = freshDir();
    const badCopy = path.join(freshDir(), CIFAR10_TARBALL);
    fs.writeFileSync(badCopy, "not the tarball");
    const errors: string[] = [];
    const original = console.error;
    console.error = (...parts: unknown[]) => { errors.push(parts.join(" ")); };
    try {
      assert.equal(await main(["--dir", dataDir, "--local", badCopy]), 2);
    } finally {
      console.error = original;
    }
    const text = errors.join("\n");
    assert.equal(text.split("\n").length, 1, text);
    assert.match(text, /^error: local copy .*cifar-10-binary\.tar\.gz: wrong md5 checksum/);
    assert.deepEqual(fs.readdirSync(dataDir), []);
  });
});
