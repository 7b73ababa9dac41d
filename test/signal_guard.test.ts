// The native engine's signal guard (tools/native/patch_binding.py): TensorFlow's matrix products run
// oneDNN's JIT GEMM kernels, which point the stack register into the heap while they run (oneDNN
// issue #4845). Without the guard, a signal handled on such a thread wrote its frame into the heap:
// training at 32x32 with SIGUSR2 sent every 2 ms aborted within seconds ("corrupted size vs.
// prev_size", "malloc(): unaligned tcache chunk detected") or crashed in TensorFlow later, on this
// project's kernels or without them, with oneDNN's ops on or off. Ctrl-C, a Jupyter interrupt and
// Slurm's SIGTERM are such signals. Here the same training runs once quietly and once under that
// storm of signals (test/helpers/signal_child.ts): both must finish, the handler must have seen
// the signals, and the losses and weights must be the same bits. Skipped where no native engine is
// built (`make native`).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { spawn } from "child_process";
import { nativeDir } from "../src/engine/backend";
import type { SignalRun } from "./helpers/signal_child";

const STEPS = 60;

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  sent: number;
}

/** Runs the child; with `storm`, sends it SIGUSR2 every 2 ms from READY until TRAINED. */
function runChild(storm: boolean): Promise<ChildResult> {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(__dirname, "helpers", "signal_child.ts"), String(STEPS)],
    { env: { ...process.env, BIAS_INIT_BACKEND: "native", TF_CPP_MIN_LOG_LEVEL: "2" }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "", stderr = "", sent = 0;
  let timer: NodeJS.Timeout | null = null;
  const stop = (): void => {
    if (timer !== null) clearInterval(timer);
    timer = null;
  };
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
    if (storm && timer === null && /^READY$/m.test(stdout) && !/^TRAINED$/m.test(stdout)) {
      timer = setInterval(() => {
        if (child.exitCode === null && child.signalCode === null && child.kill("SIGUSR2")) sent++;
      }, 2);
    }
    if (/^TRAINED$/m.test(stdout)) stop();
  });
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on("close", (code, signal) => {
    stop();
    resolve({ code, signal, stdout, stderr, sent });
  }));
}

function parse(r: ChildResult, what: string): SignalRun {
  assert.equal(r.code, 0, `${what}: exit ${r.code ?? r.signal}; stderr:\n${r.stderr.split("\n").filter((l) => !l.startsWith("I0000")).join("\n")}`);
  return JSON.parse(r.stdout.trim().split("\n").pop() as string) as SignalRun;
}

test("training on the native engine survives a storm of handled signals, with the same numbers as without it", { timeout: 300_000 }, async (t) => {
  const pkg = path.join(nativeDir(), "tfjs-node");
  if (!fs.existsSync(path.join(pkg, "package.json"))) return t.skip(`no native engine built in ${pkg} (\`make native\`)`);
  if (process.env.BIAS_INIT_SIGNAL_GUARD === "0") return t.skip("BIAS_INIT_SIGNAL_GUARD=0 is set");
  const quiet = parse(await runChild(false), "the quiet run");
  const stormed = await runChild(true);
  const storm = parse(stormed, `the run sent ${stormed.sent} signals`);
  assert.equal(quiet.losses.length, STEPS);
  assert.ok(quiet.losses.every((l) => Number.isFinite(l) && l > 0), `losses: ${quiet.losses.join(", ")}`);
  assert.ok(stormed.sent >= 200, `only ${stormed.sent} signals were sent during training`);
  assert.ok(storm.handled >= 20, `the handler saw ${storm.handled} of ${stormed.sent} signals`);
  assert.equal(quiet.handled, 0);
  assert.deepEqual(storm.losses, quiet.losses, "the same loss at every step");
  assert.equal(storm.weights, quiet.weights, "the same weights, bit for bit");
});
