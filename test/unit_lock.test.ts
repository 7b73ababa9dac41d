// Unit locks (src/experiment/unit_lock.ts) and start-up cleanup of leftovers (src/util/leftovers.ts):
// exclusive creation, staleness by heartbeat age and by a dead owner, takeover by exactly one of
// many processes racing for a stale lock, a holder that notices it lost its lock, and leftovers
// removed only when their writer is gone (judged by pid on this host, by age for another host's).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, ChildProcess } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { describeOwner, isStale, readLock, tryAcquire } from "../src/experiment/unit_lock";
import { HOST_TAG, leftoverPid, leftoverTag, leftoverWriter, pidAlive, removeLeftovers } from "../src/util/leftovers";

const ROOT = path.resolve(__dirname, "..");

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bias-lock-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The pid of a process that has exited (and been reaped). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "console.log(process.pid)"], { encoding: "utf8" });
  const pid = Number(r.stdout.trim());
  assert.equal(pidAlive(pid), false);
  return pid;
}

function writeLock(file: string, owner: { pid: number; host: string }, ageMs: number, startedMsAgo = 0): void {
  fs.writeFileSync(file, JSON.stringify({ ...owner, started: new Date(Date.now() - startedMsAgo).toISOString(), token: "someone-else" }));
  const t = new Date(Date.now() - ageMs);
  fs.utimesSync(file, t, t);
}

test("a lock is exclusive, names its owner, and is released only by its holder", (t) => {
  const file = path.join(tempDir(t), "lock");
  const first = tryAcquire(file, 60_000);
  assert.ok(first.lock, "the first caller gets the lock");
  assert.equal(fs.readdirSync(path.dirname(file)).join(","), "lock", "no temporary file is left beside it");
  const second = tryAcquire(file, 60_000);
  assert.equal(second.lock, undefined, "a second caller does not");
  assert.equal(second.owner?.pid, process.pid);
  assert.equal(second.owner?.host, os.hostname());
  assert.equal(second.owner?.token, first.lock.owner.token);
  assert.match(describeOwner(second.owner as NonNullable<typeof second.owner>), new RegExp(`^pid ${process.pid} on ${os.hostname()}, heartbeat \\d+ s ago$`));

  // The heartbeat is the file's mtime.
  const before = fs.statSync(file).mtimeMs;
  assert.equal(first.lock.heartbeat(0, Date.now() + 5000), true);
  assert.ok(fs.statSync(file).mtimeMs >= before + 4000, "heartbeat moved the mtime");

  // Taken over behind its back: the holder finds out, and leaves the new owner's lock alone.
  writeLock(file, { pid: process.pid, host: "elsewhere" }, 0);
  assert.equal(first.lock.held(), false);
  assert.equal(first.lock.heartbeat(), false);
  first.lock.release();
  assert.equal(readLock(file)?.host, "elsewhere", "release did not remove another owner's lock");
});

test("stale locks: an old heartbeat from another host, a dead or replaced owner on this one; live ones are busy", (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, "lock");

  writeLock(file, { pid: 1, host: "other-host" }, 10_000);
  const owner = readLock(file) as NonNullable<ReturnType<typeof readLock>>;
  assert.equal(isStale(owner, 60_000), false, "another host's lock with a 10 s old heartbeat is live under a 60 s timeout");
  assert.equal(tryAcquire(file, 60_000).owner?.host, "other-host");
  assert.equal(isStale(owner, 5_000), true, "and stale under a 5 s one");
  const taken = tryAcquire(file, 5_000);
  assert.ok(taken.lock, "a stale lock is taken over");
  assert.equal(readLock(file)?.pid, process.pid);
  taken.lock.release();
  assert.equal(fs.existsSync(file), false);

  // A killed run on this host: stale at once, whatever the timeout.
  writeLock(file, { pid: deadPid(), host: os.hostname() }, 0);
  assert.ok(tryAcquire(file, 3_600_000).lock, "a dead owner's lock is taken over at once");
  assert.deepEqual(fs.readdirSync(dir), ["lock"], "nothing set aside is left");

  // A live process on this host holds its lock however old its heartbeat (a long evaluation)...
  const live = spawn("sleep", ["30"]);
  t.after(() => live.kill());
  writeLock(file, { pid: live.pid as number, host: os.hostname() }, 3_600_000);
  assert.equal(tryAcquire(file, 60_000).owner?.pid, live.pid, "a live local owner with an hour-old heartbeat");
  // ...unless its pid now names a process started after the lock was taken (the pid was reused).
  writeLock(file, { pid: live.pid as number, host: os.hostname() }, 0, 3_600_000);
  assert.ok(tryAcquire(file, 3_600_000).lock, "a reused pid does not hold the lock");

  // An unreadable lock file counts by its age only.
  fs.writeFileSync(file, "{ half a lock");
  assert.equal(tryAcquire(file, 60_000).owner?.pid, 0);
  const old = new Date(Date.now() - 120_000);
  fs.utimesSync(file, old, old);
  assert.ok(tryAcquire(file, 60_000).lock);
});

test("processes racing for one stale lock: exactly one takes it", async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, "lock");
  writeLock(file, { pid: deadPid(), host: os.hostname() }, 0);
  const script = `const { tryAcquire } = require(${JSON.stringify(path.join(ROOT, "src/experiment/unit_lock"))});
const fs = require("fs");
fs.writeFileSync(${JSON.stringify(path.join(dir, "ready-"))} + process.pid, "");
while (!fs.existsSync(${JSON.stringify(path.join(dir, "go"))})) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
const r = tryAcquire(${JSON.stringify(file)}, 3600000);
console.log(r.lock ? "won" : "busy " + r.owner.pid);
setTimeout(() => {}, 1500); // hold it while the others look`;
  const children: ChildProcess[] = [];
  const outputs: Array<Promise<string>> = [];
  for (let i = 0; i < 4; i++) {
    const child = spawn(process.execPath, ["--import", "tsx", "-e", script], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
    children.push(child);
    outputs.push(new Promise((resolve) => {
      let out = "";
      child.stdout?.on("data", (d) => (out += d));
      child.on("close", () => resolve(out.trim()));
    }));
  }
  // Start them together once all are loaded and spinning on "go".
  while (fs.readdirSync(dir).filter((f) => f.startsWith("ready-")).length < children.length) await new Promise((r) => setTimeout(r, 50));
  for (const f of fs.readdirSync(dir).filter((f) => f.startsWith("ready-"))) fs.rmSync(path.join(dir, f));
  fs.writeFileSync(path.join(dir, "go"), "");
  const results = await Promise.all(outputs);
  assert.equal(results.filter((r) => r === "won").length, 1, results.join(" | "));
  const winner = children[results.indexOf("won")].pid;
  for (const r of results.filter((x) => x !== "won")) assert.equal(r, `busy ${winner}`, results.join(" | "));
  assert.deepEqual(fs.readdirSync(dir).sort(), ["go", "lock"], "no temporary or set-aside file is left");
});

test("leftovers of dead writers are removed, a live writer's are kept", (t) => {
  const dir = tempDir(t);
  const dead = deadPid();
  const live = spawn("sleep", ["30"]);
  t.after(() => live.kill());
  const names = {
    // This host's, tagged and untagged (older code).
    dead: [
      `epochs.jsonl.tmp-${dead}`, `cifar-10-binary.tar.gz.part-${dead}`, `.extract-${dead}-AbC123`, `.synthetic-${dead}-xYz789`, `lock.stale.tmp-${dead}`,
      `steps.jsonl.tmp-${dead}.h${HOST_TAG}`, `weights.pth.part-${dead}.h${HOST_TAG}`, `.extract-${dead}.h${HOST_TAG}-AbC124`, `.synthetic-${dead}.h${HOST_TAG}-xYz780`,
    ],
    live: [`epochs.jsonl.tmp-${live.pid}`, `weights.pth.part-${live.pid}`, `.extract-${live.pid}-QwE456`, `config.json.tmp-${live.pid}.h${HOST_TAG}`],
    own: [`status.json.tmp-${process.pid}`, `checkpoint.bin.tmp-${leftoverTag()}`, `.synthetic-${leftoverTag()}-Own123`],
    other: ["epochs.jsonl", "checkpoint-2.bin", ".extract-NoPid1"],
  };
  for (const name of [...names.dead, ...names.live, ...names.own, ...names.other]) {
    if (name.startsWith(".extract") || name.startsWith(".synthetic")) fs.mkdirSync(path.join(dir, name, "inside"), { recursive: true });
    else fs.writeFileSync(path.join(dir, name), "x");
  }
  assert.equal(leftoverPid(`checkpoint-2.bin.tmp-${dead}`), dead);
  assert.equal(leftoverPid("checkpoint-2.bin"), null);
  assert.equal(leftoverPid(`checkpoint-2.bin.tmp-${dead}.h${HOST_TAG}`), dead);
  assert.deepEqual(removeLeftovers(dir, 60_000).sort(), [...names.dead].sort());
  assert.deepEqual(fs.readdirSync(dir).sort(), [...names.live, ...names.own, ...names.other].sort());
  // A live writer's file older than the timeout is taken for abandoned (its pid may have been reused).
  const old = new Date(Date.now() - 120_000);
  fs.utimesSync(path.join(dir, names.live[0]), old, old);
  assert.deepEqual(removeLeftovers(dir, 60_000), [names.live[0]]);
});

test("leftover names carry the writer's pid and host; another host's leftover is removed only when older than staleMs", (t) => {
  const dir = tempDir(t);
  const dead = deadPid();
  const other = HOST_TAG === "0123abcd" ? "89abcdef" : "0123abcd"; // a host that is not this one
  assert.match(HOST_TAG, /^[0-9a-f]{8}$/);
  assert.equal(leftoverTag(), `${process.pid}.h${HOST_TAG}`);
  assert.deepEqual(leftoverWriter(`x.tmp-${dead}.h${other}`), { pid: dead, host: other });
  assert.deepEqual(leftoverWriter(`.extract-${dead}.h${other}-AbC123`), { pid: dead, host: other });
  assert.deepEqual(leftoverWriter(`x.tmp-${dead}`), { pid: dead, host: null });
  assert.equal(leftoverWriter(`x.tmp-${dead}.hNOTHEX12`), null);

  const names = {
    otherHost: `x.tmp-${dead}.h${other}`, // its pid means nothing here: a live writer on the other host
    otherHostFolder: `.extract-${dead}.h${other}-AbC123`,
    thisHost: `y.tmp-${dead}.h${HOST_TAG}`,
    untagged: `z.tmp-${dead}`,
    own: `w.tmp-${leftoverTag()}`,
  };
  for (const name of Object.values(names)) {
    if (name.startsWith(".extract")) fs.mkdirSync(path.join(dir, name, "inside"), { recursive: true });
    else fs.writeFileSync(path.join(dir, name), "x");
  }
  assert.deepEqual(removeLeftovers(dir, 60_000).sort(), [names.thisHost, names.untagged].sort(), "fresh: only this host's dead writers' leftovers go");
  assert.deepEqual(fs.readdirSync(dir).sort(), [names.otherHost, names.otherHostFolder, names.own].sort());

  // Older than staleMs: another host's writer gave no sign of life for that long; this process's own stays.
  const old = new Date(Date.now() - 120_000);
  for (const name of [names.otherHost, names.otherHostFolder, names.own]) fs.utimesSync(path.join(dir, name), old, old);
  assert.deepEqual(removeLeftovers(dir, 60_000).sort(), [names.otherHost, names.otherHostFolder].sort());
  assert.deepEqual(fs.readdirSync(dir), [names.own]);
});
