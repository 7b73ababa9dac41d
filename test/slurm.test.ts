// The grid as a Slurm job array, on a real Slurm: a one-node cluster on this machine
// (tools/slurm/local-cluster.sh: munged, slurmctld, slurmd, stopped by their pids afterwards) runs
// deploy/slurm/grid.sbatch as an array of 3 tasks on the smoke grid (its data cut to a few
// batches). The store ends with every unit done and the rows of a serial run. Then an array whose
// tasks all die (SIGKILL by the store's crash hook, after their second epoch write) leaves units
// locked and half trained; resubmitting the same array takes them over from their checkpoints and
// finishes them with the serial rows. Last, `scancel` of a training task (SIGTERM, as its time limit
// sends): the worker stops after its step in flight, exits 130 and releases its unit, and a
// resubmission finishes the store. Needs root and Debian's slurmd, slurmctld, slurm-client and
// munge (.ci/run installs them); skipped, saying why, without them.
//
// How each task ended is read from the controller (`scontrol show job`: state and exit code), not
// from `sbatch --wait`'s exit status, which is 0 also when a poll finds the job gone, when a poll
// fails (some Slurm versions stop waiting there) and when a task ended without an exit status
// (node failure). This test failed twice in CI on that status, unexplained; when it fails, its
// message now carries the controller's view of the jobs and the tails of the cluster's logs and of
// the tasks' outputs.
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
import { COMPILED_NODE_FLAGS, killWorkers, ROOT, spawnCli, unitStarts, waitUntil, workerLogs } from "./helpers/worker_logs";

const TOOLS = ["sbatch", "squeue", "scancel", "sinfo", "slurmctld", "slurmd", "munged"];
const missing = TOOLS.filter((t) => spawnSync("bash", ["-c", `command -v ${t} || test -x /usr/sbin/${t}`]).status !== 0);
const skip = process.getuid?.() !== 0 ? "needs root (the test cluster runs its daemons and jobs as root)"
  : missing.length > 0 ? `Slurm is not installed (${missing.join(", ")} missing): apt-get install -y slurmd slurmctld slurm-client munge` : false;

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd: ROOT, env, encoding: "utf8", maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** One array task as the controller last saw it: `JobState` and `ExitCode` (`status:signal`). */
interface TaskEnd { task: string; state: string; exitCode: string }
const FINISHED = new Set(["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "PREEMPTED"]);

/** Polls the controller until all `tasks` of array job `jobId` have ended; throws after `timeoutMs`. */
async function waitForTasks(jobId: string, tasks: number, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<TaskEnd[]> {
  const end = Date.now() + timeoutMs;
  let seen = "";
  for (;;) {
    const r = sh("scontrol", ["-o", "show", "job", jobId], env);
    if (r.status === 0) {
      seen = r.stdout;
      const ends = r.stdout.split("\n").filter(Boolean).map((line) => ({
        task: /\bArrayTaskId=(\S+)/.exec(line)?.[1] ?? "?", state: /\bJobState=(\S+)/.exec(line)?.[1] ?? "?", exitCode: /\bExitCode=(\S+)/.exec(line)?.[1] ?? "?" }));
      if (ends.length === tasks && ends.every((e) => /^\d+$/.test(e.task) && FINISHED.has(e.state))) return ends.sort((a, b) => Number(a.task) - Number(b.task));
    }
    if (Date.now() > end) throw new Error(`job ${jobId}: its ${tasks} tasks had not all ended after ${timeoutMs / 1000} s; the controller last said:\n${seen}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

/** The tails of every file under `dir` named by `pick` (the cluster's logs, the tasks' outputs). */
function tails(dir: string, pick: (name: string) => boolean, lines = 40): string {
  if (!fs.existsSync(dir)) return "";
  return fs.readdirSync(dir).filter(pick).map((f) => `--- ${f} (last ${lines} lines)\n${fs.readFileSync(path.join(dir, f), "utf8").split("\n").slice(-lines).join("\n")}`).join("\n");
}

test("the smoke grid as a Slurm job array of 3 tasks: every unit done with the serial rows; dead tasks' units finished by a resubmission; a cancelled task stops after its step and a resubmission finishes", { skip }, async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bias-slurm-"));
  const state = path.join(tmp, "cluster");
  let env: NodeJS.ProcessEnv = process.env;
  t.after(() => {
    // Jobs left by a failed assertion first, then the daemons this test started (by their pid files).
    const jobs = sh("squeue", ["-h", "-o", "%A"], env).stdout.split("\n").filter(Boolean);
    if (jobs.length > 0) sh("scancel", [...new Set(jobs)], env);
    for (const r of ["results", "again", "cancelled"]) killWorkers(path.join(tmp, r));
    sh("bash", [path.join(ROOT, "tools/slurm/local-cluster.sh"), "stop", state], process.env);
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  const started = sh("bash", [path.join(ROOT, "tools/slurm/local-cluster.sh"), "start", state], process.env);
  assert.equal(started.status, 0, started.stdout + started.stderr);
  const conf = /^SLURM_CONF=(.+)$/m.exec(started.stdout)?.[1];
  assert.ok(conf, started.stdout);
  // The tasks compile the CLI (tools/run-ts.sh) into this test's folder, not the checkout's dist/.
  const dist = path.join(tmp, "dist");
  env = { ...process.env, SLURM_CONF: conf, BIAS_INIT_DIST_DIR: dist };

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

  // What `make slurm-submit TASKS=3` submits, with resources that fit this 2-core node; the test
  // then waits for the tasks to end (waitForTasks) and reads how each ended.
  const sbatch = (results: string, tasks: number, extra: string[] = [], cliExtra: string[] = []): string => {
    const r = sh("sbatch", ["--parsable", `--array=0-${tasks - 1}`, `--chdir=${ROOT}`, `--output=${path.join(tmp, `${results}-%A_%a.out`)}`, "--cpus-per-task=1", "--mem=1000", ...extra,
      path.join(ROOT, "deploy/slurm/grid.sbatch"), ...flags(results), ...cliExtra], env);
    const jobId = /^(\d+)/.exec(r.stdout.trim())?.[1];
    assert.ok(r.status === 0 && jobId, `sbatch: ${r.stdout}${r.stderr}`);
    return jobId;
  };
  const submit = async (results: string, extra: string[] = [], cliExtra: string[] = []): Promise<TaskEnd[]> => waitForTasks(sbatch(results, 3, extra, cliExtra), 3, env, 20 * 60_000);
  const outputs = (results: string): string[] => fs.readdirSync(tmp).filter((f) => f.startsWith(`${results}-`) && f.endsWith(".out")).map((f) => fs.readFileSync(path.join(tmp, f), "utf8"));
  const ended = (ends: TaskEnd[]): string => ends.map((e) => `task ${e.task} ${e.state} ExitCode=${e.exitCode}`).join("; ");

  try {
    const array = await submit("results");
    assert.deepEqual(array.map((e) => [e.state, e.exitCode]), [["COMPLETED", "0:0"], ["COMPLETED", "0:0"], ["COMPLETED", "0:0"]], ended(array));
    const tasks = outputs("results");
    assert.deepEqual(tasks.map((o) => /^grid\.sbatch: task (\d) of job \d+ on /m.exec(o)?.[1]).sort(), ["0", "1", "2"], tasks.join("\n----\n"));
    const logs = workerLogs(path.join(tmp, "results"));
    assert.equal(new Set(logs.map((l) => l.hello?.pid)).size, 3, "three workers, one per task");
    assert.deepEqual(logs.map((l) => l.hello?.node), [0, 1, 2].map(() => [...COMPILED_NODE_FLAGS, path.join(dist, "src", "cli.cjs")]), "each task runs the CLI compiled, as make run does");
    // Each task's TensorFlow threads are its --cpus-per-task (unless the submitter set them).
    assert.deepEqual(logs.map((l) => l.hello?.threads), [threads, threads, threads]);
    assert.deepEqual([...unitStarts(logs).values()].filter((n) => n !== 1), [], "no unit trained twice");
    assert.deepEqual(storeRows(config, path.join(tmp, "results")), expected);
    assert.deepEqual(leftovers(path.join(tmp, "results")), []);

    // Every task dies (SIGKILL) after its second epoch write: units are left locked by dead
    // processes, half trained. Two tasks run at once here; the third takes over one of their units.
    const dying = await submit("again", ["--export=ALL,BIAS_INIT_CRASH_AFTER=epochs.jsonl:2"]);
    assert.deepEqual(dying.map((e) => [e.state, e.exitCode]), [["FAILED", "0:9"], ["FAILED", "0:9"], ["FAILED", "0:9"]], `every task killed by signal 9: ${ended(dying)}`);
    assert.ok(storeRows(config, path.join(tmp, "again")).length < expected.length, "units were left unfinished");
    assert.ok(leftovers(path.join(tmp, "again")).some((f) => /(^|\/)lock$/.test(f)), `a dead task's lock is left: ${leftovers(path.join(tmp, "again"))}`);
    const resubmitted = await submit("again");
    assert.deepEqual(resubmitted.map((e) => e.state), ["COMPLETED", "COMPLETED", "COMPLETED"], ended(resubmitted));
    const resumed = workerLogs(path.join(tmp, "again")).flatMap((l) => l.lines).filter((l) => l.type === "unit-start" && l.fromEpoch > 1);
    assert.ok(resumed.length > 0, "a unit was resumed from its checkpoint, not restarted");
    assert.deepEqual(storeRows(config, path.join(tmp, "again")), expected);
    assert.deepEqual(leftovers(path.join(tmp, "again")), []);

    // scancel ends a job as its time limit does: SIGTERM to every process of the task, SIGKILL
    // KillWait (30 s) later. The worker stops after its step in flight, logs exit 130 and releases
    // its unit; the same array, resubmitted, finishes the store. More steps per unit (320 images,
    // 6 epochs) so that the signal lands while the task is still training.
    const longer = ["--train-limit", "320", "--epochs", "6"];
    const cancelDir = path.join(tmp, "cancelled");
    const cancelJob = sbatch("cancelled", 1, [], longer);
    await waitUntil(() => workerLogs(cancelDir).some((l) => l.lines.some((x) => x.type === "step")) || null, 10 * 60_000, "the task's first training step");
    const cancel = sh("scancel", [cancelJob], env);
    assert.equal(cancel.status, 0, cancel.stdout + cancel.stderr);
    const [cancelEnd] = await waitForTasks(cancelJob, 1, env, 5 * 60_000);
    assert.equal(cancelEnd.state, "CANCELLED", ended([cancelEnd]));
    const [stopped] = workerLogs(cancelDir);
    const exit = stopped.lines.find((x) => x.type === "exit");
    assert.ok(exit?.type === "exit" && exit.code === 130, `the worker stopped on SIGTERM after its step (exit 130), not killed: ${JSON.stringify(exit)}`);
    const longConfig = makeConfig(request.preset as PresetName, parseCli([...flags("cancelled"), ...longer]).overrides);
    const complete = 4 * (6 + 1);
    assert.ok(storeRows(longConfig, cancelDir).length < complete, "cancelled before the end");
    assert.deepEqual(leftovers(cancelDir).filter((f) => !/(^|\/)checkpoint-/.test(f)), [], "no lock or partial write left; a checkpoint to resume from may be");
    const finished = await submit("cancelled", [], longer);
    assert.deepEqual(finished.map((e) => e.state), ["COMPLETED", "COMPLETED", "COMPLETED"], ended(finished));
    assert.equal(storeRows(longConfig, cancelDir).length, complete, "every scratch unit's epochs 0-6");
    assert.deepEqual(leftovers(cancelDir), []);
  } catch (err) {
    // What the cluster saw, for a failure in CI (the folder holding it is removed with the test's).
    const seen = [`--- scontrol -o show job\n${sh("scontrol", ["-o", "show", "job"], env).stdout}`, `--- sinfo\n${sh("sinfo", [], env).stdout}`,
      tails(path.join(state, "log"), (f) => f.endsWith(".log")), tails(tmp, (f) => f.endsWith(".out"), 15)].join("\n");
    if (err instanceof Error) err.message += `\n\nThe local cluster:\n${seen}`;
    throw err;
  }
});
