// Files a killed process leaves behind: `<file>.tmp-<pid>` (atomic writes of the results store),
// `<file>.part-<pid>` (downloads) and `.extract-<pid>-*` / `.synthetic-<pid>-*` folders (CIFAR-10
// extraction, synthetic data). Each name carries its writer's pid, so a leftover is removed only
// when that process is gone from this host, or when it is older than `staleMs` (its writer was
// on another host, or the pid was reused): never while a live process may still be writing it.
import * as fs from "fs";
import * as path from "path";

/** `name.tmp-123`, `name.part-123`, `.extract-123-XXXXXX`, `.synthetic-123-XXXXXX`: group 1 is the pid. */
const LEFTOVER = /(?:\.tmp-|\.part-|^\.extract-|^\.synthetic-)(\d+)(?:-[^/]*)?$/;

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

/** The writer's pid encoded in a leftover's name, or null for any other name. */
export function leftoverPid(name: string): number | null {
  const m = LEFTOVER.exec(name);
  return m ? Number(m[1]) : null;
}

/**
 * Removes the leftovers directly inside `dir` whose writer is dead or that are older than
 * `staleMs` (this process's own are kept). Returns the names removed.
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
    const pid = leftoverPid(name);
    if (pid === null || pid === process.pid) continue;
    const file = path.join(dir, name);
    let age: number;
    try {
      age = now - fs.lstatSync(file).mtimeMs;
    } catch {
      continue; // gone meanwhile
    }
    if (pidAlive(pid) && age <= staleMs) continue;
    fs.rmSync(file, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
