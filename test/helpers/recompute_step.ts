// Child process for test/model.test.ts's block-recompute test: on the backend named by
// BIAS_INIT_BACKEND, builds a seeded tiny model + binary head and runs the same training-mode
// forward and backward pass (one step's gradients, loss and BatchNorm running statistics) under
// each recompute mode given on the command line ("never", "always", "auto:<minValues>"). Prints
// one JSON line: per mode, the loss, SHA-256 digests of the raw float32 bytes of every gradient
// and every running statistic, the largest gradient, and how many tensors the forward pass kept
// alive for the backward pass. Each backend runs in its own process.
import { createHash } from "crypto";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../src/engine/backend";
import { BlockRecompute, setBlockRecompute } from "../../src/model/efficientnet";
import { BinaryClassifier } from "../../src/model/head";
import { makeRng } from "../../src/rng";

export interface RecomputeRun {
  loss: number;
  /** Digest of each trainable variable's gradient, by state_dict key. */
  grads: Record<string, string>;
  /** Largest |gradient| of each trainable variable. */
  gradMax: Record<string, number>;
  /** Digest of each running_mean / running_var after the step. */
  running: Record<string, string>;
  /** Running statistics that the step changed. */
  runningMoved: number;
  /** Tensors alive at the end of the forward pass that were not alive before it. */
  kept: number;
}

export interface RecomputeOutput {
  backend: string;
  runs: Record<string, RecomputeRun>;
}

const digest = (v: Float32Array): string => createHash("sha256").update(Buffer.from(v.buffer, v.byteOffset, v.byteLength)).digest("hex");

async function main(): Promise<void> {
  const info = await initBackend();
  const model = new BinaryClassifier("tiny", makeRng(11, "init"));
  model.initHeadBias("positive_rate", 0.1);
  const data = makeRng(11, "data");
  const n = 4;
  const x = tf.tensor4d(Float32Array.from({ length: n * 32 * 32 * 3 }, () => data.normal()), [n, 32, 32, 3]);
  const y = tf.tensor1d([1, 0, 0, 0]);
  const initial = model.getWeights();
  const runs: Record<string, RecomputeRun> = {};
  for (const arg of process.argv.slice(2)) {
    const [mode, minValues] = arg.split(":");
    setBlockRecompute(mode as BlockRecompute, minValues === undefined ? undefined : Number(minValues));
    model.setWeights(initial);
    const rng = makeRng(11, "step");
    const before = tf.memory().numTensors;
    let kept = 0;
    const { value, grads } = tf.variableGrads(() => {
      const logits = model.forward(x, { training: true, updateBatchNorm: true, rng });
      kept = tf.memory().numTensors - before;
      return tf.losses.sigmoidCrossEntropy(y, logits) as tf.Scalar;
    }, model.trainableVariables());
    const run: RecomputeRun = { loss: value.dataSync()[0], grads: {}, gradMax: {}, running: {}, runningMoved: 0, kept };
    for (const [key, v] of model.namedVariables()) {
      if (v.trainable) {
        const g = grads[v.name].dataSync() as Float32Array;
        run.grads[key] = digest(g);
        run.gradMax[key] = g.reduce((m, e) => Math.max(m, Math.abs(e)), 0);
      } else {
        const values = v.dataSync() as Float32Array;
        run.running[key] = digest(values);
        if (digest(initial.get(key) as Float32Array) !== run.running[key]) run.runningMoved++;
      }
    }
    tf.dispose([value, ...Object.values(grads)]);
    runs[arg] = run;
  }
  setBlockRecompute("auto");
  const out: RecomputeOutput = { backend: info.kind, runs };
  console.log(JSON.stringify(out));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
