// The grid as a Slurm job array, on a real Slurm: a one-node cluster on this machine
// (tools/slurm/local-cluster.sh: munged, slurmctld, slurmd, stopped by their pids afterwards) runs
// deploy/slurm/grid.sbatch as an array of 3 tasks on the smoke grid (its data cut to a few
// batches). The store ends with every unit done and the rows of a serial run. Then an array whose
// tasks all die (SIGKILL by the store's crash hook, after their second epoch write) leaves units
// locked and half trained; resubmitting the same array takes them over from their checkpoints and
// finishes them with the serial rows. Needs root and Debian's slurmd, slurmctld, slurm-client and
// munge (.ci/run installs them); skipped, saying why, without them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { makeConfig, PresetName } from "../src/config";
import { parseCli } from "../src/cli";
import { writeSyntheticCifar10 } from "../src/data/synthetic";
import { leftovers, storeRows } from "./helpers/grid_runs";
import { killWorkers, ROOT, spawnCli, unitStarts, workerLogs } from "./helpers/worker_logs";

const TOOLS = ["sbatch", "squeue", "scancel", "sinfo", "slurmctld", "slurmd", "munged"];
const missing = TOOLS.filter((t) => spawnSync("bash", ["-c", `command -v ${t} || test -x /usr/sbin/${t}`]).status !== 0);
const skip = process.getuid?.() !== 0 ? "needs root (the test cluster runs its daemons and jobs as root)"
  : missing.length > 0 ? `Slurm is not installed (${missing.join(", ")} missing): apt-get install -y slurmd slurmctld slurm-client munge` : false;

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd: ROOT, env, encoding: "utf8", maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

test("the smoke grid as a Slurm job array of 3 tasks: every unit done with the serial rows; dead tasks' units finished by a resubmission", { skip }, async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bias-slurm-"));
  const state = path.join(tmp, "cluster");
  let env: NodeJS.ProcessEnv = process.env;
  t.after(() => {
    // Jobs left by a failed assertion first, then the daemons this test started (by their pid files).
    const jobs = sh("squeue", ["-h", "-o", "%A"], env).stdout.split("\n").filter(Boolean);
    if (jobs.length > 0) sh("scancel", [...new Set(jobs)], env);
    for (const r of ["results", "again"]) killWorkers(path.join(tmp, r));
    sh("bash", [path.join(ROOT, "tools/slurm/local-cluster.sh"), "stop", state], process.env);
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  const started = sh("bash", [path.join(ROOT, "tools/slurm/local-cluster.sh"), "start", state], process.env);
  assert.equal(started.status, 0, started.stdout + started.stderr);
  const conf = /^SLURM_CONF=(.+)$/m.exec(started.stdout)?.[1];
  assert.ok(conf, started.stdout);
  env = { ...process.env, SLURM_CONF: conf };

  writeSyntheticCifar10(path.join(tmp, "data"), { perTrainBatch: 100, testCount: 32, seed: 3 });
  const flags = (results: string): string[] => ["--preset", "smoke", "--data", "cifar10", "--data-dir", path.join(tmp, "data"),
    "--train-limit", "64", "--test-limit", "32", "--train-batch", "32", "--results", path.join(tmp, results)];
  const request = parseCli(flags("serial"));
  const config = makeConfig(request.preset as PresetName, request.overrides);
  // The serial run with the tasks' TensorFlow threads (grid.sbatch sets them to --cpus-per-task=1
  // below): the thread count moves results at float round-off.
  const threads = process.env.TF_NUM_INTRAOP_THREADS ?? "1";
  const serial = await spawnCli(flags("serial"), { TF_NUM_INTRAOP_THREADS: threads }).done;
  assert.equal(serial.code, 0, serial.stdout + serial.stderr);
  const expected = storeRows(config, request.resultsDir);
  assert.equal(expected.length, 4 * 3, "the 4 scratch units of the smoke grid, epochs 0-2 (its ImageNet units cannot run: no weights for the tiny model)");

  // What `make slurm-submit TASKS=3` submits, with --wait, and resources that fit this 2-core node.
  const submit = (results: string, extra: string[] = []): { status: number | null; stdout: string; stderr: string } => sh("sbatch", [
    "--parsable", "--wait", "--array=0-2", `--chdir=${ROOT}`, `--output=${path.join(tmp, `${results}-%A_%a.out`)}`, "--cpus-per-task=1", "--mem=1000", ...extra,
    path.join(ROOT, "deploy/slurm/grid.sbatch"), ...flags(results)], env);
  const outputs = (results: string): string[] => fs.readdirSync(tmp).filter((f) => f.startsWith(`${results}-`) && f.endsWith(".out")).map((f) => fs.readFileSync(path.join(tmp, f), "utf8"));

  const array = submit("results");
  assert.equal(array.status, 0, array.stdout + array.stderr + outputs("results").join("\n----\n"));
  const tasks = outputs("results");
  assert.deepEqual(tasks.map((o) => /^grid\.sbatch: task (\d) of job \d+ on /m.exec(o)?.[1]).sort(), ["0", "1", "2"], tasks.join("\n----\n"));
  const logs = workerLogs(path.join(tmp, "results"));
  assert.equal(new Set(logs.map((l) => l.hello?.pid)).size, 3, "three workers, one per task");
  // Each task's TensorFlow threads are its --cpus-per-task (unless the submitter set them).
  assert.deepEqual(logs.map((l) => l.hello?.threads), [threads, threads, threads]);
  assert.deepEqual([...unitStarts(logs).values()].filter((n) => n !== 1), [], "no unit trained twice");
  assert.deepEqual(storeRows(config, path.join(tmp, "results")), expected);
  assert.deepEqual(leftovers(path.join(tmp, "results")), []);

  // Every task dies after its second epoch write: units are left locked by dead processes, half trained.
  const dying = submit("again", ["--export=ALL,BIAS_INIT_CRASH_AFTER=epochs.jsonl:2"]);
  assert.notEqual(dying.status, 0, "the tasks were killed");
  assert.ok(storeRows(config, path.join(tmp, "again")).length < expected.length, "units were left unfinished");
  assert.ok(leftovers(path.join(tmp, "again")).some((f) => /(^|\/)lock$/.test(f)), `a dead task's lock is left: ${leftovers(path.join(tmp, "again"))}`);
  const resubmitted = submit("again");
  assert.equal(resubmitted.status, 0, resubmitted.stdout + resubmitted.stderr);
  const resumed = workerLogs(path.join(tmp, "again")).flatMap((l) => l.lines).filter((l) => l.type === "unit-start" && l.fromEpoch > 1);
  assert.ok(resumed.length > 0, "a unit was resumed from its checkpoint, not restarted");
  assert.deepEqual(storeRows(config, path.join(tmp, "again")), expected);
  assert.deepEqual(leftovers(path.join(tmp, "again")), []);
});
