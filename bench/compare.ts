// make bench-compare: the project's training loop against PyTorch on the same CPU, side by side.
// Each engine runs in its own process (so peak RSS is its own), alternating, `--rounds` times, at
// 32x32 batch 64 (eval batch 256) and at the reference's 240x240 with batch 16.
//   node --import tsx bench/compare.ts [--rounds 2] [--seconds 20] [--sizes 32,240] [--backends native,js] [--threads 0,1]
// --threads: CPU thread counts to run both engines with (0: each engine's default, 2 here). On a
// shared 2-core VM whose second core is busy, both engines ran 1.4x (TF) to 7x (PyTorch's OpenMP
// training) faster with 1 thread, so ratios are printed per thread count and against the best PyTorch.
import { parseArgs } from "util";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

const ROOT = path.resolve(__dirname, "..");
const PYTHON = path.join(ROOT, ".venv/bin/python");

interface BenchLine {
  engine: string;
  backend?: string;
  size: number;
  batch: number;
  train_img_s: number;
  eval_img_s: number;
  peak_rss_gb: number;
}

function runJson(cmd: string, args: string[], env: NodeJS.ProcessEnv): BenchLine | string {
  const r = spawnSync(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, encoding: "utf8", maxBuffer: 16 << 20 });
  const line = r.stdout.trim().split("\n").reverse().find((l) => l.startsWith("{"));
  if (r.status !== 0 || !line) return `exit ${r.status}: ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ")}`;
  return JSON.parse(line) as BenchLine;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    rounds: { type: "string", default: "2" }, seconds: { type: "string", default: "20" },
    sizes: { type: "string", default: "32,240" }, backends: { type: "string", default: "native,js" },
    threads: { type: "string", default: "0" },
  } });
  const rounds = Number(values.rounds);
  const seconds = values.seconds as string;
  const sizes = (values.sizes as string).split(",").map(Number);
  const backends = (values.backends as string).split(",");
  const threadCounts = (values.threads as string).split(",").map(Number);
  if (threadCounts.some((t) => !Number.isInteger(t) || t < 0)) throw new Error(`--threads wants non-negative integers, got "${values.threads}"`);
  const tag = (t: number) => (t === 0 ? "" : ` ${t}t`);
  // libtensorflow reads these when it creates its thread pools.
  const tfThreads = (t: number): NodeJS.ProcessEnv => (t === 0 ? {} : { TF_NUM_INTRAOP_THREADS: String(t), TF_NUM_INTEROP_THREADS: String(t) });
  if (!fs.existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: run \`make setup\` first (PyTorch is the reference side)`);
  for (const size of sizes) {
    const batch = size <= 64 ? 64 : 16;
    const evalBatch = size <= 64 ? 256 : 16;
    const engines: Array<{ name: string; run: () => BenchLine | string }> = [];
    for (const t of threadCounts) {
      for (const b of backends) {
        // Pure JS needs minutes per B1 step at 240x240; FACTS.md has its 32x32 figure.
        if (b === "js" && size > 64) continue;
        engines.push({ name: `project (${b})${tag(t)}`, run: () => runJson(process.execPath, ["--import", "tsx", "bench/train_speed.ts", "--json", "--size", String(size),
          "--batch", String(batch), "--eval-batch", String(evalBatch), "--seconds", seconds], { BIAS_INIT_BACKEND: b, ...tfThreads(t) }) });
      }
      engines.push({ name: `pytorch${tag(t)}`, run: () => runJson(PYTHON, ["tools/bench_pytorch.py", "--size", String(size), "--batch", String(batch),
        "--eval-batch", String(evalBatch), "--seconds", seconds, "--threads", String(t)], {}) });
    }
    const results = new Map<string, BenchLine[]>();
    console.log(`\n== B1 + Linear(1000,1), ${size}x${size}, train batch ${batch}, eval batch ${evalBatch}, ${rounds} alternating rounds`);
    for (let round = 1; round <= rounds; round++) {
      for (const e of engines) {
        const r = e.run();
        if (typeof r === "string") {
          console.log(`  round ${round} ${e.name.padEnd(18)} failed: ${r}`);
          continue;
        }
        console.log(`  round ${round} ${e.name.padEnd(18)} train ${r.train_img_s.toFixed(2).padStart(7)} img/s | eval ${r.eval_img_s.toFixed(2).padStart(7)} img/s | peak RSS ${r.peak_rss_gb.toFixed(2)} GB${r.backend ? ` | ${r.backend.split(" | ")[0]}` : ""}`);
        results.set(e.name, [...(results.get(e.name) ?? []), r]);
      }
    }
    const summary = (rs: BenchLine[]) => ({ train: mean(rs.map((r) => r.train_img_s)), eval: mean(rs.map((r) => r.eval_img_s)), rss: mean(rs.map((r) => r.peak_rss_gb)) });
    const torchRuns = [...results].filter(([name]) => name.startsWith("pytorch")).map(([name, rs]) => ({ name, ...summary(rs) }));
    if (torchRuns.length === 0) continue;
    const best = torchRuns.reduce((a, b) => (b.train > a.train ? b : a));
    for (const [name, rs] of results) {
      if (name.startsWith("pytorch")) continue;
      const p = summary(rs);
      // Same thread count first, then PyTorch's fastest setting.
      const same = torchRuns.find((r) => r.name === `pytorch${name.slice(name.indexOf(")") + 1)}`) ?? best;
      for (const t of same === best ? [best] : [same, best]) {
        console.log(`  ratio ${name}/${t.name} at ${size}x${size}: train ${(p.train / t.train).toFixed(3)} | eval ${(p.eval / t.eval).toFixed(3)} | peak memory ${(p.rss / t.rss).toFixed(3)}`);
      }
    }
  }
}

main().catch((e: unknown) => {
  console.error(`error: ${(e as Error).message}`);
  process.exit(1);
});
