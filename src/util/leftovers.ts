// Files a killed process leaves behind: `<file>.tmp-<tag>` (atomic writes of the results store),
// `<file>.part-<tag>` (downloads) and `.extract-<tag>-*` / `.synthetic-<tag>-*` folders (CIFAR-10
// extraction, synthetic data), where `<tag>` is leftoverTag(): the writer's pid and a tag of its
// host, `<pid>.h<8 hex digits of sha1(hostname)>`. Every writer takes its name from leftoverTag, so
// the format lives here alone. The host tag matters where a store or data folder is shared over a
// network file system: a pid says nothing about a process of another host. So a leftover of this
// host is removed when its process is gone from this host or when it is older than `staleMs` (the
// pid was reused); a leftover of another host only when it is older than `staleMs` (its mtime is
// its writer's last sign of life); this process's own never. Names without a host tag (written by
// older code) are judged as this host's. Older code ignores the tagged names (it keeps them).
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/** This host's tag in leftover names: the first 8 hex digits of sha1(hostname) (filesystem-safe whatever the hostname). */
export const HOST_TAG = createHash("sha1").update(os.hostname()).digest("hex").slice(0, 8);

/**
 * `name.tmp-123.hXXXXXXXX`, `name.part-123.hXXXXXXXX`, `.extract-123.hXXXXXXXX-XXXXXX`,
 * `.synthetic-123.hXXXXXXXX-XXXXXX`, and the same without `.hXXXXXXXX` (older code): group 1 is
 * the pid, group 2 the host tag when there is one.
 */
const LEFTOVER = /(?:\.tmp-|\.part-|^\.extract-|^\.synthetic-)(\d+)(?:\.h([0-9a-f]{8}))?(?:-[^/]*)?$/;

/** What goes after `.tmp-`, `.part-`, `.extract-`, `.synthetic-` in this process's temporary names: `<pid>.h<HOST_TAG>`. */
export function leftoverTag(): string {
  return `${process.pid}.h${HOST_TAG}`;
}

/** True when a process with this pid exists on this host (EPERM: it exists, owned by someone else). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The writer of a leftover, from its name: pid and host tag (null: no tag, older code), or null for any other name. */
export function leftoverWriter(name: string): { pid: number; host: string | null } | null {
  const m = LEFTOVER.exec(name);
  return m ? { pid: Number(m[1]), host: m[2] ?? null } : null;
}

/** The writer's pid encoded in a leftover's name, or null for any other name. */
export function leftoverPid(name: string): number | null {
  return leftoverWriter(name)?.pid ?? null;
}

/**
 * Removes the leftovers directly inside `dir` that are older than `staleMs`, or whose writer ran on
 * this host (tag HOST_TAG, or none) and is dead; this process's own are kept. Returns the names removed.
 */
export function removeLeftovers(dir: string, staleMs: number, now = Date.now()): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const writer = leftoverWriter(name);
    if (writer === null) continue;
    const thisHost = writer.host === null || writer.host === HOST_TAG;
    if (thisHost && writer.pid === process.pid) continue;
    const file = path.join(dir, name);
    let age: number;
    try {
      age = now - fs.lstatSync(file).mtimeMs;
    } catch {
      continue; // gone meanwhile
    }
    if (age <= staleMs && (!thisHost || pidAlive(writer.pid))) continue;
    fs.rmSync(file, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
