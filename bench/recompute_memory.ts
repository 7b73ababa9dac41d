// Peak memory and cost of a B1 training step for each block-recompute setting, each in its own
// process (peak RSS is per process): how src/model/efficientnet.ts's RECOMPUTE_MIN_VALUES was chosen.
//   node --import tsx bench/recompute_memory.ts [--size 240] [--batch 16] [--steps 3] [--settings never,4194304,2097152,1048576,always]
// A setting is "never", "always" or a threshold in values of a block's expanded activation.
import { parseArgs } from "util";
import { spawnSync } from "child_process";
import * as path from "path";
import { initBackend } from "../src/engine/backend";
import { BinaryClassifier } from "../src/model/head";
import { setBlockRecompute } from "../src/model/efficientnet";
import { makeRng } from "../src/rng";
import { lastJsonLine } from "./child_runs";
import { benchTrainingStep } from "./training_step";

interface Result { setting: string; peak_rss_gb: number; cpu_s_per_step: number; wall_s_per_step: number }

async function child(setting: string, size: number, batch: number, steps: number): Promise<void> {
  await initBackend();
  if (setting === "never" || setting === "always") setBlockRecompute(setting);
  else setBlockRecompute("auto", Number(setting));
  const net = new BinaryClassifier("b1", makeRng(0, "bench"));
  const { step } = benchTrainingStep(net, size, batch, Array.from({ length: batch }, (_, i) => (i % 10 === 0 ? 1 : 0)));
  step();
  const r0 = process.resourceUsage();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  const r1 = process.resourceUsage();
  const result: Result = {
    setting,
    peak_rss_gb: r1.maxRSS / 1024 / 1024,
    cpu_s_per_step: (r1.userCPUTime + r1.systemCPUTime - r0.userCPUTime - r0.systemCPUTime) / 1e6 / steps,
    wall_s_per_step: (performance.now() - t0) / 1000 / steps,
  };
  console.log(JSON.stringify(result));
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    size: { type: "string", default: "240" }, batch: { type: "string", default: "16" }, steps: { type: "string", default: "3" },
    settings: { type: "string", default: "never,4194304,2097152,1048576,always" }, child: { type: "string" },
  } });
  if (values.child !== undefined) return child(values.child, Number(values.size), Number(values.batch), Number(values.steps));
  console.log(`B1 training step at ${values.size}x${values.size} batch ${values.batch}, ${values.steps} steps after a warm-up, one process per setting`);
  for (const setting of (values.settings as string).split(",")) {
    const r = spawnSync(process.execPath, ["--import", "tsx", path.join(__dirname, "recompute_memory.ts"), "--child", setting,
      "--size", values.size as string, "--batch", values.batch as string, "--steps", values.steps as string], { encoding: "utf8" });
    const line = lastJsonLine(r.stdout);
    if (r.status !== 0 || line === undefined) {
      console.log(`${setting.padEnd(9)} failed (exit ${r.status}): ${r.stderr.trim().split("\n").slice(-2).join(" | ")}`);
      continue;
    }
    const j = JSON.parse(line) as Result;
    console.log(`${setting.padEnd(9)} peak RSS ${j.peak_rss_gb.toFixed(2)} GB | ${j.cpu_s_per_step.toFixed(2)} CPU s/step | ${j.wall_s_per_step.toFixed(2)} s/step`);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
