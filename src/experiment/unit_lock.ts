// One lock per unit of the results store, so that two processes (a notebook and the CLI, two CLIs,
// workers of one job) never train the same unit at once.
//
// The lock is a small JSON file (pid, host, start time, a random token) created exclusively: its
// content is written to `<lock>.tmp-<pid>.h<host>` (util/leftovers.ts leftoverTag) and hard-linked
// into place, which fails when a lock exists, so a lock file is never seen half-written. The
// heartbeat is the file's modification time, refreshed by its holder while it trains. A lock of
// this host is stale when its process is gone (a killed run); a lock of another host when its
// heartbeat is older than `staleMs`. A stale lock is taken over by renaming it aside (to
// `<lock>.stale.tmp-<pid>.h<host>`) and checking that what moved is the stale one. A holder that
// finds its lock taken over (it stalled longer than `staleMs`) stops writing to the unit.
//
// Clocks: hosts sharing a store over a network file system need synchronized clocks (NTP), since
// heartbeats written on one host are judged on another.
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as os from "os";
import { leftoverTag, pidAlive } from "../util/leftovers";
import { passed } from "./write_points";

export interface LockOwner {
  pid: number;
  host: string;
  /** ISO time the lock was taken. */
  started: string;
  token: string;
  /** Last heartbeat (the lock file's mtime), ms since the epoch. */
  heartbeat: number;
}

/** The lock at `file`, or null when there is none. An unreadable lock file has pid 0 (stale by age only). */
export function readLock(file: string): LockOwner | null {
  let text: string;
  let mtime: number;
  try {
    mtime = fs.statSync(file).mtimeMs;
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    return { pid: Number(o.pid), host: String(o.host), started: String(o.started), token: String(o.token), heartbeat: mtime };
  } catch {
    return { pid: 0, host: "?", started: "?", token: "?", heartbeat: mtime };
  }
}

/**
 * Stale: the owner ran on this host and its process is gone (or its pid now belongs to a process
 * started after the lock was taken); or the owner ran on another host and its heartbeat is older
 * than `staleMs`. A live process on this host is never judged by its heartbeat: a step or an
 * evaluation may block its heartbeat for longer than any timeout.
 */
export function isStale(owner: LockOwner, staleMs: number, now = Date.now()): boolean {
  return ownerGone(owner, () => owner.heartbeat, staleMs, now);
}

/**
 * The rule of isStale for any process that records its host, pid and start (a lock's owner, a
 * worker): on this host, by its process; elsewhere (or when that cannot be told), by whether its
 * last sign of life, read only then, is older than `staleMs`.
 */
export function ownerGone(who: { host: string; pid: number; started: string }, lastSignMs: () => number, staleMs: number, now = Date.now()): boolean {
  if (who.host === os.hostname()) {
    const gone = processGone(who.pid, who.started);
    if (gone !== null) return gone;
  }
  return now - lastSignMs() > staleMs;
}

/**
 * For a process of this host that recorded `startedIso` as its start: true when it is gone (no such
 * pid, or the pid belongs to a process started after that time), false when it runs, null when
 * that cannot be told (no /proc, or an unreadable time).
 */
export function processGone(pid: number, startedIso: string): boolean | null {
  if (!pidAlive(pid)) return true;
  const started = processStartMs(pid);
  const recorded = Date.parse(startedIso);
  return started !== null && Number.isFinite(recorded) ? started > recorded + 2000 : null;
}

/** When a process started (Linux /proc, 10 ms clock ticks), or null where that cannot be read. */
function processStartMs(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const ticks = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
    const boot = /^btime (\d+)$/m.exec(fs.readFileSync("/proc/stat", "utf8"));
    return boot && Number.isFinite(ticks) ? Number(boot[1]) * 1000 + ticks * 10 : null;
  } catch {
    return null;
  }
}

/** `pid 123 on host-a, heartbeat 4 s ago` */
export function describeOwner(owner: LockOwner, now = Date.now()): string {
  return `pid ${owner.pid} on ${owner.host}, heartbeat ${Math.max(0, Math.round((now - owner.heartbeat) / 1000))} s ago`;
}

/** A lock this process holds. */
export class UnitLock {
  private lost = false;
  private lastBeat: number;

  constructor(readonly file: string, readonly owner: LockOwner) {
    this.lastBeat = owner.heartbeat;
  }

  /** True while the lock file is still this one (nobody took it over). */
  held(): boolean {
    return !this.lost && readLock(this.file)?.token === this.owner.token;
  }

  /**
   * Refreshes the heartbeat when `everyMs` passed since the last one (0: now). Returns false, and
   * stays false, once the lock was taken over: the caller must stop writing to the unit.
   */
  heartbeat(everyMs = 0, now = Date.now()): boolean {
    if (this.lost) return false;
    if (everyMs > 0 && now - this.lastBeat < everyMs) return true;
    if (!this.held()) {
      this.lost = true;
      return false;
    }
    const t = new Date(now);
    fs.utimesSync(this.file, t, t);
    this.lastBeat = now;
    return true;
  }

  /** Removes the lock if it is still this one. */
  release(): void {
    if (this.lost || !this.held()) return;
    fs.rmSync(this.file, { force: true });
    this.lost = true;
    passed("lock-released");
  }
}

export type AcquireResult = { lock: UnitLock; owner?: undefined } | { lock?: undefined; owner: LockOwner };

/**
 * Takes the lock at `file` (its folder must exist): returns the held lock, or the live owner of
 * the lock that is in the way. A stale lock is taken over.
 */
export function tryAcquire(file: string, staleMs: number): AcquireResult {
  for (let attempt = 0; attempt < 5; attempt++) {
    const current = readLock(file);
    if (current !== null) {
      if (!isStale(current, staleMs)) return { owner: current };
      setAside(file, current);
      continue;
    }
    const now = Date.now();
    const owner: LockOwner = { pid: process.pid, host: os.hostname(), started: new Date(now).toISOString(), token: randomBytes(8).toString("hex"), heartbeat: now };
    const tmp = `${file}.tmp-${leftoverTag()}`;
    fs.writeFileSync(tmp, JSON.stringify({ pid: owner.pid, host: owner.host, started: owner.started, token: owner.token }) + "\n");
    passed("lock.tmp");
    try {
      fs.linkSync(tmp, file);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      if ((e as NodeJS.ErrnoException).code === "EEXIST") continue; // another process was faster
      throw e;
    }
    passed("lock");
    fs.rmSync(tmp, { force: true });
    passed("lock.tmp-removed");
    const mtime = fs.statSync(file).mtimeMs;
    return { lock: new UnitLock(file, { ...owner, heartbeat: mtime }) };
  }
  const owner = readLock(file);
  if (owner !== null) return { owner };
  throw new Error(`${file}: could not take the lock after 5 attempts (locks appearing and vanishing)`);
}

/** Moves a stale lock out of the way; a fresh lock moved by mistake (a race) is put back. */
function setAside(file: string, stale: LockOwner): void {
  const aside = `${file}.stale.tmp-${leftoverTag()}`;
  try {
    fs.renameSync(file, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return; // someone else took it over
    throw e;
  }
  const moved = readLock(aside);
  if (moved !== null && moved.token !== stale.token) {
    try {
      fs.linkSync(aside, file);
    } catch {
      // A third process locked meanwhile; the owner of the lock we moved finds it lost at its next heartbeat.
    }
  }
  fs.rmSync(aside, { force: true });
}
