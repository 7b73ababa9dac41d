// A run killed right after any write of the store, then run again, ends with exactly the rows of
// an uninterrupted run and leaves no temporary file, lock or checkpoint behind. The points are not
// guessed or timed: an uninterrupted run in this process lists every write it makes (write_points.ts),
// and a child process is killed (SIGKILL, by the BIAS_INIT_CRASH_AFTER=*:N hook) after each one in turn.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { runExperiment } from "../src/experiment/grid";
import { observeWrites, WritePoint, WRITE_POINTS } from "../src/experiment/write_points";
import { configOf, leftovers, smallGrid, spawnGrid, storeRows } from "./helpers/grid_runs";

test("killed after each write of the epoch/checkpoint/status sequence, a rerun ends with the uninterrupted rows", async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bias-crash-"));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  // Two epochs of one step, so that a resume also starts from a checkpoint holding momentum buffers,
  // and a kill can land while the checkpoints of two epochs are on disk.
  const overrides = smallGrid(path.join(tmp, "data"), { arms: ["positive_rate"], trials: 1, epochs: 2 }, { train: 32, test: 16 });
  const config = configOf(overrides);

  const sequence: WritePoint[] = [];
  observeWrites((p) => sequence.push(p));
  try {
    await runExperiment(config, { resultsDir: path.join(tmp, "straight") });
  } finally {
    observeWrites(null);
  }
  const expected = storeRows(config, path.join(tmp, "straight"));
  assert.deepEqual(expected.map((r) => r.epoch), [0, 1, 2]);
  assert.deepEqual([...new Set(sequence)].sort(), [...WRITE_POINTS].sort(), "one uninterrupted run passes every write point of the store");

  // The crashing runs in child processes, a few at a time; each store is rerun here as its child ends.
  const parallel = Math.max(1, Math.min(4, os.availableParallelism()));
  const check = async (n: number, dir: string, run: { signal: NodeJS.Signals | null; stderr: string }): Promise<void> => {
    const point = sequence[n - 1];
    assert.equal(run.signal, "SIGKILL", `write ${n} (${point}): the child was not killed by the hook:\n${run.stderr}`);
    assert.match(run.stderr, new RegExp(`after write ${n} \\(${point.replace(/\./g, "\\.")} #\\d+\\)`), run.stderr);
    await runExperiment(config, { resultsDir: dir });
    assert.deepEqual(storeRows(config, dir), expected, `killed after write ${n} (${point}), then rerun: other rows`);
    assert.deepEqual(leftovers(dir), [], `killed after write ${n} (${point}), then rerun: files left`);
    const status = fs.readdirSync(dir).map((h) => path.join(dir, h, "scratch__positive_rate__trial-0", "status.json")).find((f) => fs.existsSync(f)) as string;
    assert.equal(JSON.parse(fs.readFileSync(status, "utf8")).state, "done", `killed after write ${n} (${point}): status`);
  };
  let next = 1;
  const worker = async (): Promise<void> => {
    while (next <= sequence.length) {
      const n = next++;
      const dir = path.join(tmp, `crash-${n}`);
      await check(n, dir, await spawnGrid(overrides, dir, { BIAS_INIT_CRASH_AFTER: `*:${n}` }).done);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  console.log(`crash points: ${sequence.length} (${sequence.join(", ")}), ${parallel} child process(es) at a time`);
});
