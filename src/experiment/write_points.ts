// Every change the results store makes on disk, named: a point is passed right after its write,
// rename or removal is done. The crash-point test (test/crash_points.test.ts) kills a run right
// after each of them in turn (BIAS_INIT_CRASH_AFTER=*:N, a test hook read in src/config.ts) and
// checks that rerunning ends with the rows of an uninterrupted run.
import { ConfigError, readEnvironment } from "../config";

export const WRITE_POINTS = [
  "config.json.tmp", "config.json",
  "lock.tmp", "lock", "lock.tmp-removed", "lock-released",
  "status.json.tmp", "status.json",
  "checkpoint.bin.tmp", "checkpoint.bin", "checkpoint.json.tmp", "checkpoint.json",
  "steps.jsonl.tmp", "steps.jsonl",
  "epochs.jsonl.tmp", "epochs.jsonl",
  "checkpoint.json-removed", "checkpoint.bin-removed",
] as const;

export type WritePoint = (typeof WRITE_POINTS)[number];

let crashAfter: { point: WritePoint | "*"; n: number } | null | undefined;
let observer: ((point: WritePoint) => void) | null = null;
let seen = 0;
const seenByPoint = new Map<string, number>();

/** BIAS_INIT_CRASH_AFTER parsed: `<point>:<n>` (n >= 1), `*` for any point; null when unset. */
export function parseCrashAfter(value: string | null): { point: WritePoint | "*"; n: number } | null {
  if (value === null) return null;
  const m = /^([^:]+):(\d+)$/.exec(value);
  const point = m?.[1];
  if (!m || Number(m[2]) < 1 || (point !== "*" && !(WRITE_POINTS as readonly string[]).includes(point as string))) {
    throw new ConfigError(`BIAS_INIT_CRASH_AFTER: "${value}" is not <write>:<n> with n >= 1 and <write> one of *, ${WRITE_POINTS.join(", ")}; unset it (it is a test hook)`);
  }
  return { point: point as WritePoint | "*", n: Number(m[2]) };
}

/** Checks the hook's setting now (entry points call this before writing anything). */
export function checkCrashHook(): void {
  crashAfter ??= parseCrashAfter(readEnvironment().BIAS_INIT_CRASH_AFTER);
}

/** Tests watch the sequence of writes of a run in-process through this. */
export function observeWrites(fn: ((point: WritePoint) => void) | null): void {
  observer = fn;
}

/** Called by the store right after each write; kills the process here when the hook says so. */
export function passed(point: WritePoint): void {
  observer?.(point);
  checkCrashHook();
  if (!crashAfter) return;
  seen++;
  const count = (seenByPoint.get(point) ?? 0) + 1;
  seenByPoint.set(point, count);
  if (crashAfter.point === "*" ? seen === crashAfter.n : crashAfter.point === point && count === crashAfter.n) {
    process.stderr.write(`BIAS_INIT_CRASH_AFTER: killing the process after write ${seen} (${point} #${count})\n`);
    process.kill(process.pid, "SIGKILL");
  }
}
