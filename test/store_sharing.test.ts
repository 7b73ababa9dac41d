// Several processes on one results store (a notebook and the CLI, two CLIs): every unit is trained
// exactly once, a killed process's unit is taken over and finished with the rows of an
// uninterrupted run, and a run says through its progress reporter which units it leaves to others,
// waits for them at its end (within a bound), and takes over a lock that goes stale.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { runExperiment, storeFor } from "../src/experiment/grid";
import { runWithProgress, ProgressView } from "../src/experiment/progress";
import { configOf, leftovers, smallGrid, spawnGrid, storeRows } from "./helpers/grid_runs";

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bias-sharing-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const started = (events: Array<Record<string, unknown>>): string[] => events.filter((e) => e.type === "unit-start").map((e) => e.unit as string);

// Both multi-process tests run this grid (4 units of 2 epochs); its uninterrupted rows are computed once.
const shared = { dir: fs.mkdtempSync(path.join(os.tmpdir(), "bias-sharing-")), expected: null as Array<Record<string, unknown>> | null };
after(() => fs.rmSync(shared.dir, { recursive: true, force: true }));
const overrides = smallGrid(path.join(shared.dir, "data"), { trials: 2, epochs: 2 });
const config = configOf(overrides);
async function expectedRows(): Promise<Array<Record<string, unknown>>> {
  if (shared.expected === null) {
    await runExperiment(config, { resultsDir: path.join(shared.dir, "straight") });
    shared.expected = storeRows(config, path.join(shared.dir, "straight"));
  }
  return shared.expected;
}

test("two processes started at once on one store train every unit exactly once", async (t) => {
  const expected = await expectedRows();
  const store = path.join(tempDir(t), "shared");
  const [a, b] = await Promise.all([spawnGrid(overrides, store).done, spawnGrid(overrides, store).done]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const all = [...started(a.events), ...started(b.events)];
  assert.deepEqual([...all].sort(), ["scratch/positive_rate trial 0", "scratch/positive_rate trial 1", "scratch/vanilla trial 0", "scratch/vanilla trial 1"],
    `units started: A ${started(a.events).join(", ")} | B ${started(b.events).join(", ")}`);
  assert.deepEqual(storeRows(config, store), expected);
  assert.deepEqual(leftovers(store), []);
});

test("a process killed mid-unit: the other takes the unit over (its lock is stale once its owner is gone) and finishes it with identical rows", async (t) => {
  const expected = await expectedRows();
  const store = path.join(tempDir(t), "shared");
  const a = spawnGrid(overrides, store);
  const b = spawnGrid(overrides, store);
  // A is past its unit's first epoch (a checkpoint with momentum buffers exists): kill it there.
  const step = await a.waitFor((e) => e.type === "step" && e.epoch === 2);
  a.child.kill("SIGKILL");
  const killed = await a.done;
  assert.equal(killed.signal, "SIGKILL");
  const finished = await b.done;
  assert.equal(finished.code, 0, finished.stderr);
  assert.ok(started(finished.events).includes(step.unit as string), `B took over ${step.unit}: ${JSON.stringify(finished.events.filter((e) => e.type !== "step"))}`);
  assert.deepEqual(storeRows(config, store), expected);
  assert.deepEqual(leftovers(store), []);
});

/** A view that keeps what it is shown. */
function recordingView(): ProgressView & { rows: string[]; lines: string[] } {
  const rows: string[] = [];
  const lines: string[] = [];
  return { rows, lines, setLine: (l) => lines.push(l), addRow: (r) => rows.push(r), finish: (r) => rows.push(r) };
}

test("the progress reporter names a unit another process holds, waits for it within a bound, and takes it over when stale", async (t) => {
  const tmp = tempDir(t);
  const config = configOf(smallGrid(path.join(tmp, "data"), { arms: ["vanilla", "positive_rate"], trials: 1, epochs: 1 }));
  const resultsDir = path.join(tmp, "results");
  // A process on another host holds positive_rate trial 0, and keeps its heartbeat fresh.
  const { store } = storeFor(config, resultsDir);
  const unitDir = store.unitDir({ backbone: "scratch", arm: "positive_rate", trial: 0 });
  fs.mkdirSync(unitDir, { recursive: true });
  const lock = path.join(unitDir, "lock");
  fs.writeFileSync(lock, JSON.stringify({ pid: 4242, host: "another-host", started: new Date().toISOString(), token: "another-run" }));
  const beat = setInterval(() => fs.existsSync(lock) && fs.utimesSync(lock, new Date(), new Date()), 200);
  const env = { BIAS_INIT_LOCK_STALE_S: process.env.BIAS_INIT_LOCK_STALE_S, BIAS_INIT_LOCK_WAIT_S: process.env.BIAS_INIT_LOCK_WAIT_S };
  t.after(() => {
    clearInterval(beat);
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  });
  process.env.BIAS_INIT_LOCK_STALE_S = "2";

  // Within a 1.5 s bound it trains the free unit, says it skips the other, waits, and gives up.
  process.env.BIAS_INIT_LOCK_WAIT_S = "1.5";
  const view = recordingView();
  const first = await runWithProgress(config, { resultsDir, view });
  assert.deepEqual([...new Set(first.result.records.map((r) => r.arm))], ["vanilla"]);
  const skip = view.rows.filter((r) => r.startsWith("skipping"));
  assert.equal(skip.length, 1, view.rows.join("\n"));
  assert.match(skip[0], /^skipping scratch\/positive_rate trial 0: another process is training it \(pid 4242 on another-host, heartbeat \d+ s ago\); waiting for it at the end$/);
  assert.ok(view.rows.some((r) => /^waiting \d+s \(at most 2s\) for 1 unit\(s\) other processes are training: scratch\/positive_rate trial 0 \(pid/.test(r)), view.rows.join("\n"));
  assert.ok(view.rows.some((r) => /^stopped waiting after \d+s \(BIAS_INIT_LOCK_WAIT_S\): scratch\/positive_rate trial 0 .* still being trained; run again later/.test(r)), view.rows.join("\n"));

  // With a longer bound it waits until the other's heartbeat stops, then takes the unit over.
  process.env.BIAS_INIT_LOCK_WAIT_S = "60";
  setTimeout(() => clearInterval(beat), 1000);
  const view2 = recordingView();
  const second = await runWithProgress(config, { resultsDir, view: view2 });
  assert.deepEqual(second.result.records.map((r) => `${r.arm} ${r.epoch}`).sort(), ["positive_rate 0", "positive_rate 1", "vanilla 0", "vanilla 1"]);
  assert.ok(view2.rows.some((r) => r.startsWith("waiting")), view2.rows.join("\n"));
  assert.match(view2.rows[view2.rows.length - 1], /^done in .*: 2 of 2 unit\(s\) complete/);
  assert.deepEqual(leftovers(resultsDir), []);
});
