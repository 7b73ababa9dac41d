// make bench-compare: the project's training loop against PyTorch on the same CPU, side by side.
// Each engine runs in its own process (so peak RSS is its own), alternating, `--rounds` times, at
// 32x32 batch 64 (eval batch 256) and at the reference's 240x240 with batch 16.
//   node --import tsx bench/compare.ts [--rounds 2] [--seconds 20] [--sizes 32,240] [--backends native,js]
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
  } });
  const rounds = Number(values.rounds);
  const seconds = values.seconds as string;
  const sizes = (values.sizes as string).split(",").map(Number);
  const backends = (values.backends as string).split(",");
  if (!fs.existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: run \`make setup\` first (PyTorch is the reference side)`);
  for (const size of sizes) {
    const batch = size <= 64 ? 64 : 16;
    const evalBatch = size <= 64 ? 256 : 16;
    const engines: Array<{ name: string; run: () => BenchLine | string }> = [];
    for (const b of backends) {
      // Pure JS needs minutes per B1 step at 240x240; FACTS.md has its 32x32 figure.
      if (b === "js" && size > 64) continue;
      engines.push({ name: `project (${b})`, run: () => runJson(process.execPath, ["--import", "tsx", "bench/train_speed.ts", "--json", "--size", String(size),
        "--batch", String(batch), "--eval-batch", String(evalBatch), "--seconds", seconds], { BIAS_INIT_BACKEND: b }) });
    }
    engines.push({ name: "pytorch", run: () => runJson(PYTHON, ["tools/bench_pytorch.py", "--size", String(size), "--batch", String(batch),
      "--eval-batch", String(evalBatch), "--seconds", seconds], {}) });
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
    const torch = results.get("pytorch");
    if (!torch) continue;
    const t = { train: mean(torch.map((r) => r.train_img_s)), eval: mean(torch.map((r) => r.eval_img_s)), rss: mean(torch.map((r) => r.peak_rss_gb)) };
    for (const [name, rs] of results) {
      if (name === "pytorch") continue;
      const p = { train: mean(rs.map((r) => r.train_img_s)), eval: mean(rs.map((r) => r.eval_img_s)), rss: mean(rs.map((r) => r.peak_rss_gb)) };
      console.log(`  ratio ${name}/PyTorch at ${size}x${size}: train ${(p.train / t.train).toFixed(3)} | eval ${(p.eval / t.eval).toFixed(3)} | peak memory ${(p.rss / t.rss).toFixed(3)}`);
    }
  }
}

main().catch((e: unknown) => {
  console.error(`error: ${(e as Error).message}`);
  process.exit(1);
});
