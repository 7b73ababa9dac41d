// Verified, atomic downloads. Used for the CIFAR-10 tarball and the ImageNet weights: a file lands at
// its final path only after its checksum matched, so an interrupted or corrupted download can never
// be mistaken for a good one, and a machine without internet can be handed a local copy instead.
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { UserError } from "../errors";
import { lockSettings } from "../config";
import { leftoverTag, removeLeftovers } from "./leftovers";

export type HashAlgorithm = "md5" | "sha256";

export interface ExpectedHash {
  algorithm: HashAlgorithm;
  /** Full hex digest, or a prefix of it (at least 8 hex digits), e.g. the 8 in torchvision's file names. */
  expected: string;
}

/** Called as bytes arrive; the last call of a successful download always has doneBytes === totalBytes. */
export type ProgressCallback = (doneBytes: number, totalBytes: number | null) => void;

/** The subset of the global `fetch` that downloadFile uses (tests inject failures through it). */
export type FetchLike = (url: string, init: { signal: AbortSignal; redirect: "follow" }) => Promise<{
  ok: boolean;
  status: number;
  statusText: string;
  headers: { get(name: string): string | null };
  body: AsyncIterable<Uint8Array> | null;
}>;

export interface DownloadOptions {
  url: string;
  dest: string;
  hash: ExpectedHash;
  /** Verify and copy this file instead of using the network. */
  localCopy?: string | null;
  onProgress?: ProgressCallback;
  fetchImpl?: FetchLike;
  /** How to pass a local copy in this program, appended to network errors (e.g. "--local PATH"). */
  localCopyHint?: string;
  /** Abort when no byte arrived for this long (default 60 s): a stalled connection fails instead of hanging. */
  stallTimeoutMs?: number;
}

export interface DownloadResult {
  path: string;
  /** true only when the bytes came over the network in this call. */
  downloaded: boolean;
}

export class DownloadError extends UserError {
  override name = "DownloadError";
}

/** The bytes arrived (or the local copy exists) but do not match the expected digest. */
export class ChecksumError extends DownloadError {
  override name = "ChecksumError";
}

const MIN_PREFIX = 8;

function normalizeExpected(hash: ExpectedHash): string {
  const expected = hash.expected.trim().toLowerCase();
  const fullLength = hash.algorithm === "md5" ? 32 : 64;
  if (!/^[0-9a-f]+$/.test(expected) || expected.length < MIN_PREFIX || expected.length > fullLength) {
    throw new DownloadError(
      `expected ${hash.algorithm} "${hash.expected}" must be ${MIN_PREFIX} to ${fullLength} hex digits`);
  }
  return expected;
}

export function hashMatches(actual: string, hash: ExpectedHash): boolean {
  return actual.toLowerCase().startsWith(normalizeExpected(hash));
}

/** Hex digest of a file, streamed so that large files do not sit in memory. */
export async function hashFile(file: string, algorithm: HashAlgorithm): Promise<string> {
  const h = createHash(algorithm);
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest("hex");
}

function checksumError(what: string, hash: ExpectedHash, actual: string): ChecksumError {
  return new ChecksumError(
    `${what}: wrong ${hash.algorithm} checksum (expected ${hash.expected}, got ${actual}); ` +
    `the file is corrupted or is not the expected one, nothing was kept`);
}

function removeQuietly(file: string): void {
  try {
    fs.rmSync(file, { force: true });
  } catch {
    // Best effort: the error being reported matters more than a leftover temp file.
  }
}

function tempPathFor(dest: string): string {
  return `${dest}.part-${leftoverTag()}`;
}

/**
 * Makes `dest` hold the file whose digest is `hash`: a no-op when it already verifies, a verified
 * copy of `localCopy` when one is given (no network), else a streamed download. The bytes go to
 * `dest.part-<pid>.h<host>` (util/leftovers.ts leftoverTag) in the same folder and are renamed into place only after they verified.
 */
export async function downloadFile(opts: DownloadOptions): Promise<DownloadResult> {
  const { dest, hash } = opts;
  normalizeExpected(hash);
  if (fs.existsSync(dest) && hashMatches(await hashFile(dest, hash.algorithm), hash)) {
    return { path: dest, downloaded: false };
  }
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  // `.part-*` files (and extraction folders) of killed runs; never a live process's (util/leftovers.ts).
  removeLeftovers(path.dirname(dest), lockSettings().staleMs);
  const temp = tempPathFor(dest);
  try {
    if (opts.localCopy) {
      await copyVerified(opts.localCopy, temp, hash);
      fs.renameSync(temp, dest);
      return { path: dest, downloaded: false };
    }
    await fetchVerified(opts, temp);
    fs.renameSync(temp, dest);
    return { path: dest, downloaded: true };
  } finally {
    removeQuietly(temp);
  }
}

async function copyVerified(source: string, temp: string, hash: ExpectedHash): Promise<void> {
  if (!fs.existsSync(source)) throw new DownloadError(`local copy ${source} does not exist`);
  const actual = await hashFile(source, hash.algorithm);
  if (!hashMatches(actual, hash)) throw checksumError(`local copy ${source}`, hash, actual);
  fs.copyFileSync(source, temp);
}

async function fetchVerified(opts: DownloadOptions, temp: string): Promise<void> {
  const { url, hash } = opts;
  const fetchImpl: FetchLike = opts.fetchImpl ?? (globalThis.fetch as unknown as FetchLike);
  const hint = opts.localCopyHint ? ` (${opts.localCopyHint})` : "";
  const networkError = (cause: string): DownloadError => new DownloadError(
    `could not download ${url}: ${cause}. If this machine cannot reach it, download the file elsewhere ` +
    `and pass it as a local copy${hint}.`);

  const controller = new AbortController();
  const stallMs = opts.stallTimeoutMs ?? 60_000;
  let stallTimer: NodeJS.Timeout | undefined;
  const armStallTimer = (): void => {
    if (stallTimer) clearTimeout(stallTimer);
    stallTimer = setTimeout(() => controller.abort(), stallMs);
  };

  const h = createHash(hash.algorithm);
  // Synchronous writes of each chunk: simple, ordered, and a write error surfaces right here.
  const fd = fs.openSync(temp, "w");
  let done = 0;
  let total: number | null = null;
  try {
    armStallTimer();
    let response: Awaited<ReturnType<FetchLike>>;
    try {
      response = await fetchImpl(url, { signal: controller.signal, redirect: "follow" });
    } catch (e) {
      throw networkError(describeFetchError(e, controller.signal.aborted, stallMs));
    }
    if (!response.ok || !response.body) {
      throw networkError(`HTTP ${response.status} ${response.statusText}`.trim());
    }
    const length = Number(response.headers.get("content-length"));
    total = Number.isFinite(length) && length > 0 ? length : null;
    try {
      for await (const chunk of response.body) {
        armStallTimer();
        h.update(chunk);
        done += chunk.byteLength;
        fs.writeSync(fd, chunk);
        opts.onProgress?.(done, total);
      }
    } catch (e) {
      throw networkError(`the transfer broke off after ${done} bytes: ${describeFetchError(e, controller.signal.aborted, stallMs)}`);
    }
  } finally {
    if (stallTimer) clearTimeout(stallTimer);
    controller.abort(); // releases the connection when we stopped early (a no-op after a full read)
    fs.closeSync(fd);
  }
  if (total !== null && done !== total) {
    throw networkError(`the server announced ${total} bytes but sent ${done}`);
  }
  opts.onProgress?.(done, done);
  const actual = h.digest("hex");
  if (!hashMatches(actual, hash)) throw checksumError(`${opts.dest} (downloaded from ${url})`, hash, actual);
}

function describeFetchError(e: unknown, aborted: boolean, stallMs: number): string {
  if (aborted) return `no data for ${Math.round(stallMs / 1000)} s`;
  if (!(e instanceof Error)) return String(e);
  // Node's fetch reports "fetch failed" and keeps the useful part (ENOTFOUND, ECONNREFUSED) in `cause`.
  const cause = (e as Error & { cause?: unknown }).cause;
  const detail = cause instanceof Error ? `${(cause as NodeJS.ErrnoException).code ?? cause.name}: ${cause.message}` : "";
  return detail ? `${e.message} (${detail})` : e.message;
}

export interface ProgressPrinterOptions {
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Clock in ms, injectable for tests. */
  now?: () => number;
}

const MB = 1024 * 1024;

/**
 * A ProgressCallback that prints "label: 12.3 / 162.6 MB (7%) 4.1 MB/s". On a terminal it rewrites
 * one line in place with \r (at most 5 times a second); in logs it prints a line every ~10%
 * (every 50 MB when the size is unknown) so that CI output stays short.
 */
export function progressPrinter(label: string, opts: ProgressPrinterOptions = {}): ProgressCallback {
  const stream = opts.stream ?? process.stderr;
  const now = opts.now ?? Date.now;
  const tty = Boolean(stream.isTTY);
  const start = now();
  let lastPrint = -Infinity;
  let lastStep = -1;
  let finished = false;
  return (doneBytes, totalBytes) => {
    if (finished) return;
    const complete = totalBytes !== null && doneBytes >= totalBytes;
    const elapsed = Math.max(now() - start, 1) / 1000;
    const pct = totalBytes ? Math.floor((100 * doneBytes) / totalBytes) : null;
    const line = `${label}: ${(doneBytes / MB).toFixed(1)}` +
      (totalBytes ? ` / ${(totalBytes / MB).toFixed(1)} MB (${pct}%)` : " MB") +
      ` ${(doneBytes / MB / elapsed).toFixed(1)} MB/s`;
    if (tty) {
      if (!complete && now() - lastPrint < 200) return;
      lastPrint = now();
      stream.write(`\r${line}${complete ? "\n" : ""}`);
    } else {
      const step = pct !== null ? Math.floor(pct / 10) : Math.floor(doneBytes / (50 * MB));
      if (!complete && step === lastStep) return;
      lastStep = step;
      stream.write(`${line}\n`);
    }
    finished = complete;
  };
}
