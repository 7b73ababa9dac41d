// Item 29's A/B (docs/performance.md): B1 training steps on the native CPU engine with
// squeeze-excitation's small products as TensorFlow's MatMul (what squeeze_excitation.ts runs) against
// TF.js's BatchMatMulV2 (the same products renamed back on their way into the binding), alternating
// step by step in one process, so that the machine's drift, which moved whole runs in separate
// processes by more than the difference, falls on both alike. Prints each variant's median and mean
// step time and CPU time per step, and in how many pairs MatMul's step was the faster one.
//   node --import tsx bench/se_products.ts [--size 32] [--batch 64] [--pairs 40]
// `ONEDNN_MAX_CPU_ISA=AVX2 BIAS_INIT_CUSTOM_OPS=avx2` in front holds both to AVX2.
import { parseArgs } from "util";
import * as tf from "@tensorflow/tfjs";
import { initBackend, backendLine } from "../src/engine/backend";
import { BinaryClassifier } from "../src/model/head";
import { makeRng } from "../src/rng";
import { tensorflowOneDnnOn } from "../src/util/cpu_info";
import { benchTrainingStep } from "./training_step";

type Attr = { name: string };
type Binding = Record<string, unknown> & { executeOp(name: string, attrs: Attr[], ...rest: unknown[]): unknown };
type Variant = "BatchMatMulV2" | "MatMul";

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { size: { type: "string", default: "32" }, batch: { type: "string", default: "64" }, pairs: { type: "string", default: "40" } } });
  const [size, batch, pairs] = [Number(values.size), Number(values.batch), Number(values.pairs)];
  const info = await initBackend();
  const backend = tf.backend() as unknown as { binding?: Binding };
  const real = backend.binding;
  if (tf.getBackend() !== "tensorflow" || real === undefined) throw new Error(`needs the native engine; this is ${backendLine(info)}`);
  console.log(`${backendLine(info)} | TensorFlow's oneDNN ${tensorflowOneDnnOn() ? "on" : "off"} | B1 ${size}x${size} batch ${batch}, ${pairs} pairs of steps`);

  const net = new BinaryClassifier("b1", makeRng(0, "bench"));
  const { step } = benchTrainingStep(net, size, batch);

  // MatMul's transpose_a/b are BatchMatMulV2's adj_x/y; both take 2-D inputs.
  let variant: Variant = "MatMul";
  let renamed = 0;
  const rename: Record<string, string> = { transpose_a: "adj_x", transpose_b: "adj_y" };
  const wrapped = Object.create(real) as Binding;
  Object.defineProperty(wrapped, "executeOp", {
    value: (name: string, attrs: Attr[], ...rest: unknown[]) => {
      if (variant === "MatMul" || name !== "MatMul") return real.executeOp(name, attrs, ...rest);
      renamed++;
      return real.executeOp("BatchMatMulV2", attrs.map((a) => (a.name in rename ? { ...a, name: rename[a.name] } : a)), ...rest);
    },
  });
  backend.binding = wrapped;
  const wall: Record<Variant, number[]> = { BatchMatMulV2: [], MatMul: [] };
  const cpu: Record<Variant, number> = { BatchMatMulV2: 0, MatMul: 0 };
  try {
    for (const v of ["MatMul", "BatchMatMulV2"] as const) {
      variant = v;
      step(); // warm-up: the optimizer's buffers, each op's first call
    }
    renamed = 0;
    for (let i = 0; i < pairs; i++) {
      for (const v of (i % 2 === 0 ? ["BatchMatMulV2", "MatMul"] : ["MatMul", "BatchMatMulV2"]) as Variant[]) {
        variant = v;
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        step();
        wall[v].push(performance.now() - t0);
        const c = process.cpuUsage(c0);
        cpu[v] += (c.user + c.system) / 1000;
      }
    }
  } finally {
    backend.binding = real;
  }
  const median = (a: number[]): number => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
  const mean = (a: number[]): number => a.reduce((p, q) => p + q, 0) / a.length;
  for (const v of ["BatchMatMulV2", "MatMul"] as const) {
    console.log(`${v.padEnd(13)} step median ${median(wall[v]).toFixed(1)} ms, mean ${mean(wall[v]).toFixed(1)} ms, CPU ${(cpu[v] / pairs).toFixed(1)} ms per step`);
  }
  const wins = wall.MatMul.filter((t, i) => t < wall.BatchMatMulV2[i]).length;
  console.log(`MatMul's step the faster in ${wins} of ${pairs} pairs; mean ratio ${(mean(wall.MatMul) / mean(wall.BatchMatMulV2)).toFixed(3)}; ` +
    `${renamed / pairs} products per step renamed back to BatchMatMulV2`);
}

main().catch((e) => {
  console.error(`error: ${(e as Error).message}`);
  process.exit(1);
});
