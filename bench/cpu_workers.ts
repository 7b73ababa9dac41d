// `--workers N` on a CPU: the machine's throughput with N training processes at once, the way CPU
// workers run (experiment/workers.ts cpuWorkerEnv: the cores split between them), against N
// processes with each engine's default threads, and against PyTorch run the same two ways, with
// its heap kept (child_runs.ts TORCH_KEPT_HEAP: faster than glibc as installed at both sizes). Each
// setting starts N copies of bench/train_speed.ts (or tools/bench_pytorch.py) together, sums their
// img/s, and alternates with the other settings for `--rounds`. Peak RSS is the largest process's.
//   node --import tsx bench/cpu_workers.ts [--procs 2] [--rounds 2] [--size 32] [--seconds 20]
import { parseArgs } from "util";
import { spawn } from "child_process";
import * as os from "os";
import * as path from "path";
import { cpuWorkerEnv } from "../src/experiment/workers";
import { lastJsonLine, mean, rangeText, TORCH_KEPT_HEAP } from "./child_runs";
import { compiledCommand } from "../src/util/runner";

/** The project's side runs compiled, as `make run` does (tools/run-ts.sh). */
const trainSpeed = compiledCommand("bench/train_speed.ts");

const ROOT = path.resolve(__dirname, "..");
const PYTHON = path.join(ROOT, ".venv/bin/python");

interface Line { train_img_s: number; eval_img_s: number; peak_rss_gb: number }

function runOne(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Line | string> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("close", (code) => {
      const line = lastJsonLine(out);
      resolve(code === 0 && line !== undefined ? (JSON.parse(line) as Line) : `exit ${code}: ${err.trim().split("\n").slice(-2).join(" | ")}`);
    });
  });
}


async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    procs: { type: "string", default: "2" }, rounds: { type: "string", default: "2" }, size: { type: "string", default: "32" }, seconds: { type: "string", default: "20" },
  } });
  const procs = Number(values.procs);
  const size = Number(values.size);
  const [batch, evalBatch] = size <= 64 ? [64, 256] : [16, 16];
  const cores = os.availableParallelism();
  const share = Number(cpuWorkerEnv(procs, cores, {}).TF_NUM_INTRAOP_THREADS);
  const common = ["--size", String(size), "--batch", String(batch), "--eval-batch", String(evalBatch), "--seconds", values.seconds as string];
  const project = (env: NodeJS.ProcessEnv) => () => runOne(trainSpeed.command, [...trainSpeed.args, "--json", ...common], env);
  const pytorch = (threads: number) => () => runOne(PYTHON, ["tools/bench_pytorch.py", ...common, "--threads", String(threads)], TORCH_KEPT_HEAP);
  const settings = [
    { name: `project, ${share} thread(s) each (workers)`, run: project({ TF_NUM_INTRAOP_THREADS: String(share) }) },
    { name: "project, default threads", run: project({}) },
    { name: `pytorch, ${share} thread(s) each, heap kept`, run: pytorch(share) },
    { name: "pytorch, default threads, heap kept", run: pytorch(0) },
  ];
  console.log(`${procs} processes at once on ${cores} cores, B1 + head ${size}x${size}, train batch ${batch}, eval batch ${evalBatch}, ${values.rounds} alternating rounds | load ${os.loadavg().map((l) => l.toFixed(2)).join(", ")}`);
  const totals = new Map<string, Array<{ train: number; eval: number; rss: number }>>(settings.map((s) => [s.name, []]));
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const s of settings) {
      const lines = await Promise.all(Array.from({ length: procs }, () => s.run()));
      const failed = lines.find((l): l is string => typeof l === "string");
      if (failed !== undefined) {
        console.log(`  round ${round} ${s.name}: failed: ${failed}`);
        continue;
      }
      const ok = lines as Line[];
      const total = { train: ok.reduce((a, l) => a + l.train_img_s, 0), eval: ok.reduce((a, l) => a + l.eval_img_s, 0), rss: Math.max(...ok.map((l) => l.peak_rss_gb)) };
      (totals.get(s.name) as Array<typeof total>).push(total);
      console.log(`  round ${round} ${s.name.padEnd(38)} train ${total.train.toFixed(1).padStart(7)} img/s | eval ${total.eval.toFixed(1).padStart(7)} img/s | peak RSS per process ${total.rss.toFixed(2)} GB`);
    }
  }
  console.log(`summed over the ${procs} processes, range over rounds | load ${os.loadavg().map((l) => l.toFixed(2)).join(", ")}`);
  for (const [name, ts] of totals) if (ts.length > 0) console.log(`  ${name.padEnd(38)} train ${rangeText(ts.map((t) => t.train), 1)} img/s | eval ${rangeText(ts.map((t) => t.eval), 1)} img/s`);
  const meanOf = (name: string, key: "train" | "eval") => mean((totals.get(name) ?? []).map((t) => t[key]));
  const torchBest = (key: "train" | "eval") => Math.max(meanOf(settings[2].name, key), meanOf(settings[3].name, key));
  for (const key of ["train", "eval"] as const) {
    const [workers, defaults, theirs] = [meanOf(settings[0].name, key), meanOf(settings[1].name, key), torchBest(key)];
    console.log(`  ${key}: as --workers runs it / PyTorch's better setting = ${(workers / theirs).toFixed(2)}x; ` +
      `/ the project with default threads = ${(workers / defaults).toFixed(2)}x (ratios of the means)`);
  }
}

void main();
