// An in-process A/B of two ways to run the same B1 training step on the native CPU engine: the
// code as it is (the candidate) and the baseline it replaced, which `rewrite` restores by rewriting
// ops on their way into the binding. Steps alternate one by one (ABBA), so that the machine's drift,
// which moved whole runs in separate processes by more than these differences, falls on both alike.
// Prints each variant's median and mean step time and CPU time per step, and in how many pairs the
// candidate's step was the faster one. Used by se_products.ts (item 29), bn_se_fusion.ts (item 30), bn_dw_fusion.ts (item 32), and se_fold.ts
// and residual_fusion.ts (items 34 and 35, which switch a setting instead of rewriting ops), and
// kernels_ab.ts (item 40: this project's kernels at another git revision, loaded beside them).
// --eval alternates evaluation batches instead of training steps.
import { parseArgs } from "util";
import * as tf from "@tensorflow/tfjs";
import { initBackend, backendLine } from "../src/engine/backend";
import { BinaryClassifier } from "../src/model/head";
import { makeRng } from "../src/rng";
import { tensorflowOneDnnOn } from "../src/util/cpu_info";
import { benchEvalStep, benchTrainingStep } from "./training_step";

export type Attr = { name: string };
/** Output metadata of the binding's executeOp: one entry per output tensor. */
export type OutputMeta = { id: number };
export type Binding = Record<string, unknown> & {
  executeOp(name: string, attrs: Attr[], inputIds: number[], outputs: number): OutputMeta[];
  deleteTensor(id: number): void;
};

export interface AbSpec {
  /** What the two variants are called in the printout. */
  candidate: string;
  baseline: string;
  /** The baseline's form of one op, or undefined to run it as it is. */
  rewrite?: (real: Binding, name: string, attrs: Attr[], inputIds: number[], outputs: number) => OutputMeta[] | undefined;
  /** Called before each step with the variant it runs: for a baseline the code chooses by a setting (se_fold.ts). */
  select?: (baseline: boolean) => void;
  /** Printed with the result: what was rewritten, per step. */
  rewritten: string;
  /** Called once the engine is up, before any step (kernels_ab.ts loads its baseline kernels there). */
  prepare?: () => void;
}

export async function interleavedAb(spec: AbSpec): Promise<void> {
  const { values } = parseArgs({ options: { size: { type: "string", default: "32" }, batch: { type: "string", default: "64" }, pairs: { type: "string", default: "40" },
    eval: { type: "boolean", default: false } } });
  const [size, batch, pairs] = [Number(values.size), Number(values.batch), Number(values.pairs)];
  const info = await initBackend();
  const backend = tf.backend() as unknown as { binding?: Binding };
  const real = backend.binding;
  if (tf.getBackend() !== "tensorflow" || real === undefined) throw new Error(`needs the native engine; this is ${backendLine(info)}`);
  spec.prepare?.();
  console.log(`${backendLine(info)} | TensorFlow's oneDNN ${tensorflowOneDnnOn() ? "on" : "off"} | B1 ${size}x${size} batch ${batch}, ${pairs} pairs of ` +
    `${values.eval ? "evaluation batches" : "training steps"}`);

  const net = new BinaryClassifier("b1", makeRng(0, "bench"));
  // --eval: evaluation batches (BatchNorm folded once, as train/loop.ts' evaluate) instead of training steps.
  const step = values.eval ? benchEvalStep(net, tf.randomNormal([batch, size, size, 3], 0, 1, "float32", 2) as tf.Tensor4D).step
    : benchTrainingStep(net, size, batch).step;
  const names = [spec.baseline, spec.candidate] as const;
  let baseline = false;
  let rewritten = 0;
  const wrapped = Object.create(real) as Binding;
  Object.defineProperty(wrapped, "executeOp", {
    value: (name: string, attrs: Attr[], inputIds: number[], outputs: number) => {
      const out = baseline && spec.rewrite !== undefined ? spec.rewrite(real, name, attrs, inputIds, outputs) : undefined;
      if (out === undefined) return real.executeOp(name, attrs, inputIds, outputs);
      rewritten++;
      return out;
    },
  });
  backend.binding = wrapped;
  const wall = new Map<string, number[]>(names.map((n) => [n, []]));
  const cpu = new Map<string, number>(names.map((n) => [n, 0]));
  try {
    for (const b of [false, true]) {
      baseline = b;
      spec.select?.(b);
      step(); // warm-up: the optimizer's buffers, each op's first call
    }
    rewritten = 0;
    for (let i = 0; i < pairs; i++) {
      for (const b of i % 2 === 0 ? [true, false] : [false, true]) {
        baseline = b;
        spec.select?.(b);
        const name = names[b ? 0 : 1];
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        step();
        wall.get(name)?.push(performance.now() - t0);
        const c = process.cpuUsage(c0);
        cpu.set(name, (cpu.get(name) ?? 0) + (c.user + c.system) / 1000);
      }
    }
  } finally {
    backend.binding = real;
    spec.select?.(false);
  }
  const median = (a: number[]): number => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
  const mean = (a: number[]): number => a.reduce((p, q) => p + q, 0) / a.length;
  const width = Math.max(...names.map((n) => n.length));
  for (const n of names) {
    const w = wall.get(n) ?? [];
    console.log(`${n.padEnd(width)} step median ${median(w).toFixed(1)} ms, mean ${mean(w).toFixed(1)} ms, CPU ${((cpu.get(n) ?? 0) / pairs).toFixed(1)} ms per step`);
  }
  const [a, b] = [wall.get(spec.baseline) ?? [], wall.get(spec.candidate) ?? []];
  const wins = b.filter((t, i) => t < a[i]).length;
  console.log(`${spec.candidate}'s step the faster in ${wins} of ${pairs} pairs; mean ratio ${(mean(b) / mean(a)).toFixed(3)}; ${rewritten / pairs} ${spec.rewritten} per step`);
}

/** Runs main, printing one error line and exiting 1 on failure. */
export function runAb(spec: AbSpec): void {
  interleavedAb(spec).catch((e) => {
    console.error(`error: ${(e as Error).message}`);
    process.exit(1);
  });
}
