// A/B of process-level settings (allocator via LD_PRELOAD, TF's oneDNN switch, thread counts):
// bench/train_speed.ts --json in a fresh process per setting, the settings alternating, round after
// round, so that machine load drifts over all of them alike. Prints per setting: train and eval
// img/s, CPU seconds and page faults per step (less load-dependent than wall time), peak RSS.
//   node --import tsx bench/env_ab.ts [--rounds 2] [--size 240] [--seconds 20] \
//     [--variants "bfc=;glibc=TF_CPU_ALLOCATOR_USE_BFC=false"]
// A variant is name=VAR=value,VAR=value (empty: the environment as is); name@DIR runs DIR's
// bench/train_speed.ts instead (another checkout: before/after comparisons of the code itself).
import { parseArgs } from "util";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { lastJsonLine, rangeText } from "./child_runs";
import { stealText } from "./host_steal";

const ROOT = path.resolve(__dirname, "..");
export const JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
export const TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";
// TensorFlow's BFC allocator is the engine's default (engine/backend.ts); the malloc variants turn it off.
const MALLOC = "TF_CPU_ALLOCATOR_USE_BFC=false";
const DEFAULT_VARIANTS = `bfc=;glibc=${MALLOC};jemalloc=${MALLOC},LD_PRELOAD=${JEMALLOC};tcmalloc=${MALLOC},LD_PRELOAD=${TCMALLOC}`;

interface Line {
  train_img_s: number;
  eval_img_s: number;
  /** Absent from checkouts before these fields existed (NaN then). */
  train_cpu_s_per_step: number;
  train_faults_per_step: number;
  train_peak_rss_gb: number;
  peak_rss_gb: number;
  /** The host's steal over the training window (host_steal.ts); null where unknown or the checkout predates it. */
  train_steal: number | null;
}

function parseVariants(spec: string): Array<{ name: string; dir: string; env: Record<string, string> }> {
  return spec.split(";").filter((v) => v.trim() !== "").map((v) => {
    const [label, ...rest] = v.split("=");
    const [name, dir] = label.includes("@") ? [label.slice(0, label.indexOf("@")), label.slice(label.indexOf("@") + 1)] : [label, ROOT];
    const assignments = rest.join("=").split(",").filter((a) => a.includes("="));
    return { name, dir, env: Object.fromEntries(assignments.map((a) => [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)])) };
  });
}


function main(): void {
  const { values } = parseArgs({ options: {
    rounds: { type: "string", default: "2" }, size: { type: "string", default: "240" }, seconds: { type: "string", default: "20" },
    variants: { type: "string", default: DEFAULT_VARIANTS },
  } });
  const size = Number(values.size);
  const batch = size <= 64 ? 64 : 16;
  const evalBatch = size <= 64 ? 256 : 16;
  const variants = parseVariants(values.variants as string);
  const results = new Map<string, Line[]>(variants.map((v) => [v.name, []]));
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const v of variants) {
      // Compiled as `make run` runs (tools/run-ts.sh), where the checkout has it.
      const [command, ...entry] = fs.existsSync(path.join(v.dir, "tools", "run-ts.sh")) ? ["bash", "tools/run-ts.sh", "bench/train_speed.ts"]
        : [process.execPath, "--import", "tsx", "bench/train_speed.ts"];
      const r = spawnSync(command, [...entry, "--json", "--size", String(size), "--batch", String(batch),
        "--eval-batch", String(evalBatch), "--seconds", values.seconds as string], { cwd: v.dir, env: { ...process.env, ...v.env }, encoding: "utf8" });
      const line = lastJsonLine(r.stdout);
      if (r.status !== 0 || line === undefined) {
        console.log(`round ${round} ${v.name}: failed (exit ${r.status}): ${r.stderr.trim().split("\n").slice(-2).join(" | ")}`);
        continue;
      }
      const j = { train_cpu_s_per_step: NaN, train_faults_per_step: NaN, train_steal: null, ...(JSON.parse(line) as Partial<Line>) } as Line;
      (results.get(v.name) as Line[]).push(j);
      console.log(`round ${round} ${v.name.padEnd(10)} train ${j.train_img_s.toFixed(2)} img/s, ${j.train_cpu_s_per_step.toFixed(2)} CPU s/step, ` +
        `${Math.round(j.train_faults_per_step)} faults/step, host steal ${stealText(j.train_steal)} | ` +
        `eval ${j.eval_img_s.toFixed(2)} img/s | peak RSS train ${j.train_peak_rss_gb.toFixed(2)} GB, all ${j.peak_rss_gb.toFixed(2)} GB`);
    }
  }
  console.log(`\n${size}x${size}, train batch ${batch}, eval batch ${evalBatch}: range over rounds`);
  for (const [name, rs] of results) {
    if (rs.length === 0) continue;
    console.log(`${name.padEnd(10)} train ${rangeText(rs.map((r) => r.train_img_s), 2)} img/s | ${rangeText(rs.map((r) => r.train_cpu_s_per_step), 2)} CPU s/step | ` +
      `${rangeText(rs.map((r) => r.train_faults_per_step), 0)} faults/step | eval ${rangeText(rs.map((r) => r.eval_img_s), 2)} img/s | peak RSS ${rangeText(rs.map((r) => r.peak_rss_gb), 2)} GB`);
  }
}

main();
