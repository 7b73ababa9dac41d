// Several worker processes on one store (`--workers N`): every unit is trained exactly once with the
// rows of a serial run; a worker killed mid-unit leaves its unit to another, which resumes it from
// its checkpoint; Ctrl-C stops them all after their step in flight and the same command resumes;
// each worker is pinned to one GPU (a fake nvidia-smi lists them, or --gpus names them).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { runExperiment } from "../src/experiment/grid";
import { writeConfigFile } from "../src/experiment/config_file";
import { cpuWorkerEnv, cpuWorkersHint, gpuList, runConfigOnWorkers } from "../src/experiment/workers";
import { pidAlive } from "../src/util/leftovers";
import { parseCli, workersPreset } from "../src/cli";
import { unitLabel } from "../src/experiment/store";
import { configOf, leftovers, smallGrid, storeRows } from "./helpers/grid_runs";
import { COMPILED_NODE_FLAGS, epochRows, killWorkers, ROOT, spawnCli, unitStarts, waitUntil, workerLogs } from "./helpers/worker_logs";
import { spawn } from "child_process";

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bias-workers-"));
  t.after(() => {
    killWorkers(path.join(dir, "results"));
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

// 4 units of 2 epochs of 8 steps (256 training images in batches of 32); the serial rows once per thread count.
const shared = { dir: fs.mkdtempSync(path.join(os.tmpdir(), "bias-workers-")), expected: new Map<string, Array<Record<string, unknown>>>() };
after(() => fs.rmSync(shared.dir, { recursive: true, force: true }));
const config = configOf(smallGrid(path.join(shared.dir, "data"), { trials: 2, epochs: 2 }, { train: 256, test: 32 }));
const configFile = path.join(shared.dir, "config.json");
writeConfigFile(configFile, [config]);
const ALL_UNITS = ["scratch/positive_rate trial 0", "scratch/positive_rate trial 1", "scratch/vanilla trial 0", "scratch/vanilla trial 1"];
const ALL_EPOCH_ROWS = ALL_UNITS.flatMap((u) => [0, 1, 2].map((e) => `${u} epoch ${e}`)).sort();

/**
 * The rows of a serial run: in this process (TensorFlow's default threads, as GPU-pinned workers
 * have), or, for `workers` workers sharing the CPU (which split its cores, workers.ts cpuWorkerEnv),
 * in a process with their thread count: the thread count moves results at float round-off.
 */
async function expectedRows(cpuWorkers: number | null = null): Promise<Array<Record<string, unknown>>> {
  const threads = cpuWorkers === null ? "default" : cpuWorkerEnv(cpuWorkers, os.availableParallelism()).TF_NUM_INTRAOP_THREADS ?? "default";
  if (!shared.expected.has(threads)) {
    const results = path.join(shared.dir, `serial-${threads}`);
    if (threads === "default") await runExperiment(config, { resultsDir: results });
    else {
      const serial = await spawnCli(["--config", configFile, "--results", results], { TF_NUM_INTRAOP_THREADS: threads }).done;
      assert.equal(serial.code, 0, serial.stdout + serial.stderr);
      assert.doesNotMatch(serial.stdout, /--workers/, "the tiny model's units: no workers to suggest");
    }
    shared.expected.set(threads, storeRows(config, results));
  }
  return shared.expected.get(threads) as Array<Record<string, unknown>>;
}

/** A folder with an `nvidia-smi` whose -L lists `count` GPUs (and that answers nothing else). */
function fakeGpus(dir: string, count: number): string {
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin, { recursive: true });
  const lines = Array.from({ length: count }, (_, i) => `GPU ${i}: NVIDIA Fake T4 (UUID: GPU-0000000${i}-fake)`).join("\\n");
  fs.writeFileSync(path.join(bin, "nvidia-smi"), `#!/usr/bin/env bash\nif [ "$1" = "-L" ]; then printf '${lines}\\n'; exit 0; fi\nexit 9\n`, { mode: 0o755 });
  return bin;
}

test("three workers (pinned to the three GPUs nvidia-smi lists) train every unit exactly once, with the rows of a serial run", async (t) => {
  const expected = await expectedRows();
  const dir = tempDir(t);
  const results = path.join(dir, "results");
  const run = await spawnCli(["--workers", "3", "--config", configFile, "--results", results], { PATH: `${fakeGpus(dir, 3)}:${process.env.PATH}` }).done;
  assert.equal(run.code, 0, run.stdout + run.stderr);
  const logs = workerLogs(results);
  assert.equal(logs.length, 3);
  assert.deepEqual(logs.map((l) => l.hello?.gpu).sort(), ["0", "1", "2"], "each worker saw CUDA_VISIBLE_DEVICES set to one GPU of its own");
  assert.deepEqual([...unitStarts(logs).entries()].sort(), ALL_UNITS.map((u) => [u, 1]), "each unit started once");
  assert.deepEqual(epochRows(logs), ALL_EPOCH_ROWS, "each epoch row logged once");
  assert.deepEqual(storeRows(config, results), expected);
  assert.deepEqual(leftovers(results), []);
  // The combined view: its epoch rows name the worker, then the workers end and the summary follows.
  assert.equal(run.stdout.split("\n").filter((l) => / \| w[123]$/.test(l)).length, ALL_EPOCH_ROWS.length, run.stdout);
  assert.match(run.stdout, /started 3 worker\(s\), one GPU each \(CUDA_VISIBLE_DEVICES 0, 1, 2\)/);
  assert.match(run.stdout, /workers ended after \d+s: 4 of 4 unit\(s\) that can run are finished\nsummary \(/);
});

test("a worker killed mid-unit: another worker takes its unit over from the checkpoint and finishes it with the serial rows", async (t) => {
  const expected = await expectedRows(3);
  const dir = tempDir(t);
  const results = path.join(dir, "results");
  const cli = spawnCli(["--workers", "3", "--config", configFile, "--results", results]);
  // A worker has recorded epoch 1 of a unit (and its checkpoint): kill it while it trains epoch 2.
  const victim = await waitUntil(() => workerLogs(results).find((l) => l.lines.some((x) => x.type === "epoch" && x.record.epoch === 1)), 120_000, "a first epoch");
  process.kill(victim.hello?.pid as number, "SIGKILL");
  const killedUnit = victim.lines.filter((l) => l.type === "unit-start").map((l) => l.type === "unit-start" ? unitLabel(l.unit) : "").pop();
  const run = await cli.done;
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /w\d: was killed \(SIGKILL\) without finishing; a unit it held is taken over by another worker or the next run/);
  const others = workerLogs(results).filter((l) => l.file !== victim.file);
  const resumed = others.flatMap((l) => l.lines).find((l) => l.type === "unit-start" && unitLabel(l.unit) === killedUnit);
  assert.ok(resumed && resumed.type === "unit-start" && resumed.fromEpoch === 2, `another worker resumed ${killedUnit} at epoch 2: ${JSON.stringify(resumed)}`);
  assert.match(run.stdout, new RegExp(`w\\d: resumes ${killedUnit} from its checkpoint after epoch 1`));
  // Three workers on the CPU split its cores: each saw its share of TensorFlow's threads (at least 1).
  // (A TF_NUM_INTRAOP_THREADS set where the suite runs is passed on as it is.)
  const userSet = process.env.TF_NUM_INTRAOP_THREADS;
  const share = userSet ?? String(Math.max(1, Math.floor(os.availableParallelism() / 3)));
  assert.deepEqual(workerLogs(results).map((l) => l.hello?.threads), [share, share, share]);
  if (userSet === undefined) assert.match(run.stdout, new RegExp(`sharing the CPU's \\d+ cores \\(TF_NUM_INTRAOP_THREADS=${share} each\\)`));
  assert.match(run.stdout, new RegExp(`w1: pid \\d+ on [^,]+, TF_NUM_INTRAOP_THREADS=${share}`));
  assert.deepEqual(storeRows(config, results), expected);
  assert.deepEqual(leftovers(results), []);
});

test("make run's compiled CLI (tools/run-ts.sh): Ctrl-C stops every worker (pinned by --gpus), compiled too, after its step in flight; the same command resumes to the serial rows", async (t) => {
  const expected = await expectedRows();
  const dir = tempDir(t);
  const results = path.join(dir, "results");
  const dist = path.join(dir, "dist");
  const args = ["--gpus", "5,7", "--config", configFile, "--results", results];
  const cli = spawnCli(args, {}, dist);
  // Both workers are training (a worker still loading its engine would simply die of the signal).
  await waitUntil(() => { const logs = workerLogs(results); return logs.length === 2 && logs.every((l) => l.lines.some((x) => x.type === "step")) ? logs : null; }, 120_000, "both workers' first steps");
  cli.child.kill("SIGINT");
  const stopped = await cli.done;
  assert.equal(stopped.code, 130, stopped.stdout + stopped.stderr);
  assert.match(stopped.stdout, /interrupt: every worker stops after its step in flight/);
  const logs = workerLogs(results);
  assert.deepEqual(logs.map((l) => l.hello?.gpu).sort(), ["5", "7"], "--gpus 5,7: two workers, one on each");
  assert.deepEqual(logs.map((l) => l.hello?.node), [0, 1].map(() => [...COMPILED_NODE_FLAGS, path.join(dist, "src", "cli.cjs")]), "the workers run the compiled CLI, as their parent does");
  assert.deepEqual(logs.map((l) => l.lines.find((x) => x.type === "exit")).map((e) => e?.type === "exit" && e.code), [130, 130], "both stopped by the interrupt");
  assert.ok(storeRows(config, results).length < expected.length, "stopped before the end");
  const resumed = await spawnCli(args, {}, dist).done;
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  assert.deepEqual(storeRows(config, results), expected);
  assert.deepEqual(leftovers(results), []);
});

test("a notebook's detached workers outlive its kernel; running the cell again attaches to them (no second training), then shows the results at once", async (t) => {
  const expected = await expectedRows(2);
  const dir = tempDir(t);
  const results = path.join(dir, "results");
  // The first cell run, in a process killed as a restarted kernel would be once it shows an epoch row.
  const cell = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "test/helpers/detached_child.ts"), configFile, results], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  let shown = "";
  cell.stdout.on("data", (d: Buffer) => (shown += d.toString()));
  const closed = new Promise((resolve) => cell.on("close", resolve));
  await waitUntil(() => (/ \| w\d$/m.test(shown) ? true : null), 120_000, "the cell's first epoch row");
  cell.kill("SIGKILL");
  await closed;
  assert.match(shown, /^started 2 worker\(s\) \(detached: they keep running if this stops\)/m);
  // The first row may come from one worker before the other (slower to load its engine) has logged its start.
  const first = await waitUntil(() => {
    const logs = workerLogs(results);
    return logs.length === 2 && logs.every((l) => l.hello !== null) ? logs : null;
  }, 60_000, "both workers' logs with their start line");
  assert.ok(first.every((l) => pidAlive(l.hello?.pid as number)), "both workers still run after their kernel died");

  // `--attach` meanwhile (the workers paused until it has found them, so that they cannot end first).
  const pids = first.map((l) => l.hello?.pid as number);
  for (const pid of pids) process.kill(pid, "SIGSTOP");
  const watcher = spawnCli(["--attach", "--results", results]);
  try {
    await waitUntil(() => (/^attached to/m.test(watcher.stdout()) ? true : null), 60_000, "--attach to find the workers");
  } finally {
    for (const pid of pids) process.kill(pid, "SIGCONT");
  }
  // The cell run again: it attaches to the two workers and watches them to the end.
  const rows: string[] = [];
  const view = { setLine: () => undefined, addRow: (r: string) => void rows.push(r), finish: (r: string) => void rows.push(r) };
  const again = await runConfigOnWorkers(config, { workers: 2, detach: true, resultsDir: results, view });
  assert.match(rows[0], /^attached to 2 running worker\(s\) \(pid \d+, \d+\)/, rows.join("\n"));
  assert.equal(again.trained, true);
  assert.equal(again.stopped, false);
  assert.equal(rows.filter((r) => / \| w[12]$/.test(r)).length, ALL_EPOCH_ROWS.length, "every epoch row shown once, those before attaching included");
  const logs = workerLogs(results);
  assert.equal(logs.length, 2, "no worker was started by the second run");
  assert.deepEqual([...unitStarts(logs).entries()].sort(), ALL_UNITS.map((u) => [u, 1]));
  assert.deepEqual(epochRows(logs), ALL_EPOCH_ROWS);
  assert.deepEqual(storeRows(config, results), expected);
  assert.equal(again.result.records.length, expected.length, "the call returns what the store holds at the end");

  const attached = await watcher.done;
  assert.equal(attached.code, 0, attached.stdout + attached.stderr);
  assert.match(attached.stdout, /^attached to 2 running worker\(s\)/m);
  assert.match(attached.stdout, /workers ended after \d+s: 4 of 4 unit\(s\) that can run are finished\nsummary \(/);
  const none = await spawnCli(["--attach", "--results", results]).done;
  assert.equal(none.code, 0, none.stderr);
  assert.match(none.stdout, /^no worker is running on /m);

  // A third run: nothing left to train, the results at once, no worker started.
  const third = await runConfigOnWorkers(config, { workers: 2, detach: true, resultsDir: results, view });
  assert.equal(third.trained, false);
  assert.equal(third.result.records.length, expected.length);
  assert.equal(workerLogs(results).length, 2);
});

test("--gpus and --workers: GPU lists, the flags each worker gets, and the combinations refused", async (t) => {
  const listed = (): string[] => ["GPU 0: NVIDIA T4 (UUID: GPU-a)", "GPU 1: NVIDIA T4 (UUID: GPU-b)"];
  assert.deepEqual(gpuList(null, listed), ["0", "1"]);
  assert.deepEqual(gpuList(null, () => []), []);
  assert.deepEqual(gpuList("2, 3", listed), ["2", "3"]);
  assert.deepEqual(gpuList("GPU-5d1e8a4c-0000", listed), ["GPU-5d1e8a4c-0000"]);
  assert.throws(() => gpuList("0;rm", listed), /^UsageError: --gpus: "0;rm" is not a list of GPU indexes or UUIDs/);
  assert.equal(parseCli(["--gpus", "0,1,2"]).workers, 3);
  assert.equal(parseCli(["--workers", "2"]).workers, 2);
  assert.equal(parseCli([]).workers, null);
  // CPU workers split the cores (at least one thread each); a setting the user made is kept.
  assert.deepEqual(cpuWorkerEnv(2, 16, {}), { TF_NUM_INTRAOP_THREADS: "8" });
  assert.deepEqual(cpuWorkerEnv(3, 2, {}), { TF_NUM_INTRAOP_THREADS: "1" });
  assert.deepEqual(cpuWorkerEnv(2, 16, { TF_NUM_INTRAOP_THREADS: "4" }), {});
  // A one-process CPU run with several units names --workers; a GPU run, one unit or one core does not.
  assert.match(cpuWorkersHint("native-cpu", "b1", 40, 16) ?? "", /^note: 40 units on 16 CPU cores: `--workers 16` \(make run WORKERS=16\)/);
  assert.match(cpuWorkersHint("js", "b0", 3, 8) ?? "", /`--workers 3`/);
  assert.deepEqual([cpuWorkersHint("cuda", "b1", 40, 16), cpuWorkersHint("native-cpu", "b1", 1, 16), cpuWorkersHint("native-cpu", "b1", 40, 1),
    cpuWorkersHint("native-cpu", "tiny", 40, 16)], [null, null, null, null]);
  // Without --preset the workers get the preset the parent checked, not one each picks by its own engine.
  assert.equal(workersPreset(parseCli(["--workers", "2"]), true), "full");
  assert.equal(workersPreset(parseCli(["--workers", "2"]), false), "quick");
  assert.equal(workersPreset(parseCli(["--workers", "2", "--preset", "smoke"]), true), "smoke");
  assert.equal(workersPreset(parseCli(["--workers", "2", "--config", "x.json"]), true), null);
  assert.throws(() => parseCli(["--workers", "0"]), /--workers: "0" is not a whole number >= 1/);
  assert.throws(() => parseCli(["--workers", "2", "--worker"]), /--worker: not with --workers or --gpus/);
  assert.throws(() => parseCli(["--workers", "2", "--dry-run"]), /--workers: not with --dry-run/);
  assert.throws(() => parseCli(["--config", "x.json", "--preset", "smoke"]), /--config: not with --preset, --plan or --rates/);
  assert.throws(() => parseCli(["--attach", "--workers", "2"]), /--attach: not with --worker, --workers or --gpus/);
  // A one-process CPU run of B1 with two units names the workers that would use the cores.
  const dir = tempDir(t);
  const results = path.join(dir, "results");
  const b1 = await spawnCli(["--preset", "quick", "--data", "synthetic", "--data-dir", path.join(dir, "data"), "--train-limit", "64", "--test-limit", "32",
    "--backbones", "scratch", "--trials", "1", "--epochs", "0", "--results", path.join(dir, "b1")]).done;
  assert.equal(b1.code, 0, b1.stdout + b1.stderr);
  if (os.availableParallelism() >= 2) assert.match(b1.stdout, /^results: .* 2 unit\(s\) to run.*\nnote: 2 units on \d+ CPU cores: `--workers 2` \(make run WORKERS=2\)/m);
  // A bad config is one error line before any worker starts.
  const bad = await spawnCli(["--workers", "2", "--preset", "smoke", "--lr=-1", "--results", results]).done;
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim(), "error: config.lr: -1 must be in (0, 10]");
  assert.equal(fs.existsSync(results), false, "no worker was started");
});
