// The user's own files in a checkout: reports/, results/, data/, weights/, and dist/ (what make run
// compiled, tools/run-ts.sh; tests compile into their own folders). The test suite must leave them
// byte-identical. `snapshotCheckout` puts a sentinel file into each (creating the
// folder when absent) and records every entry's type, size and SHA-256; `checkoutChanges` lists
// what differs afterwards; `removeSentinels` takes away what the snapshot added.
//
// A unit folder of results/ that a live run holds locked (a user's grid training while the tests
// run) is not compared: its files change for reasons of its own.
import { createHash, randomBytes } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { lockSettings } from "../../src/config";
import { isStale, readLock } from "../../src/experiment/unit_lock";

export const GUARDED_FOLDERS = ["reports", "results", "data", "weights", "dist"] as const;
export const SENTINEL = ".bias-test-sentinel";

export interface CheckoutSnapshot {
  root: string;
  /** Relative path -> "dir" | "file <size> <sha256>" | "link <target>". */
  entries: Map<string, string>;
  /** Folders held by a live run (relative paths), not compared. */
  live: Set<string>;
  /** What the snapshot created: sentinel files and folders, removed by removeSentinels. */
  created: string[];
}

function hashFile(file: string): string {
  const h = createHash("sha256");
  const fd = fs.openSync(file, "r");
  const buf = Buffer.alloc(1 << 20);
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}

function walk(root: string, rel: string, entries: Map<string, string>, live: Set<string>): void {
  const abs = path.join(root, rel);
  const st = fs.lstatSync(abs, { throwIfNoEntry: false });
  if (!st) return;
  if (st.isSymbolicLink()) return void entries.set(rel, `link ${fs.readlinkSync(abs)}`);
  if (st.isFile()) return void entries.set(rel, `file ${st.size} ${hashFile(abs)}`);
  if (!st.isDirectory()) return void entries.set(rel, "other");
  const lock = readLock(path.join(abs, "lock"));
  if (lock !== null && !isStale(lock, lockSettings().staleMs)) return void live.add(rel);
  entries.set(rel, "dir");
  for (const name of fs.readdirSync(abs).sort()) walk(root, path.join(rel, name), entries, live);
}

function record(root: string, live: Set<string>): Map<string, string> {
  const entries = new Map<string, string>();
  for (const folder of GUARDED_FOLDERS) walk(root, folder, entries, live);
  return entries;
}

/** Adds a sentinel to each guarded folder (creating it if absent) and records everything. */
export function snapshotCheckout(root: string): CheckoutSnapshot {
  const created: string[] = [];
  for (const folder of GUARDED_FOLDERS) {
    const dir = path.join(root, folder);
    if (!fs.existsSync(dir)) {
      fs.mkdirSync(dir);
      created.push(folder);
    }
    const sentinel = path.join(folder, SENTINEL);
    if (!fs.existsSync(path.join(root, sentinel))) {
      fs.writeFileSync(path.join(root, sentinel), `written by test/run_suite.ts before the tests; it must be unchanged after them: ${randomBytes(16).toString("hex")}\n`);
      created.push(sentinel);
    }
  }
  const live = new Set<string>();
  return { root, entries: record(root, live), live, created };
}

/** One line per entry added, removed or changed since the snapshot. */
export function checkoutChanges(before: CheckoutSnapshot): string[] {
  const live = new Set(before.live);
  const after = record(before.root, live);
  const underLive = (rel: string): boolean => [...live].some((d) => rel === d || rel.startsWith(d + path.sep));
  const changes: string[] = [];
  for (const [rel, was] of before.entries) {
    if (underLive(rel)) continue;
    const now = after.get(rel);
    if (now === undefined) changes.push(`removed: ${rel}`);
    else if (now !== was) changes.push(`changed: ${rel} (${was.split(" ")[0]} -> ${now.split(" ")[0]}${was.startsWith("file") && now.startsWith("file") ? ", other bytes" : ""})`);
  }
  for (const rel of after.keys()) if (!before.entries.has(rel) && !underLive(rel)) changes.push(`added: ${rel}`);
  return changes;
}

/** Removes the sentinels and folders the snapshot created (folders only when empty again). */
export function removeSentinels(snapshot: CheckoutSnapshot): void {
  for (const rel of [...snapshot.created].reverse()) {
    const abs = path.join(snapshot.root, rel);
    if (rel.endsWith(SENTINEL)) fs.rmSync(abs, { force: true });
    else if (fs.existsSync(abs) && fs.readdirSync(abs).length === 0) fs.rmdirSync(abs);
  }
}
