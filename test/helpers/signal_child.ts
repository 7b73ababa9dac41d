// Child of test/signal_guard.test.ts: trains B1 + head at 32x32 batch 8 on the native engine for a
// fixed number of SGD steps (the benchmarks' step, bench/training_step.ts) with a JavaScript
// handler for SIGUSR2 installed (so a signal runs a handler on whichever thread takes it),
// yielding to the event loop after every step so the handler runs.
// Prints READY once the engine is loaded, then one JSON line: the loss of every step, a SHA-256 of
// every weight's bytes after the last step, and how many signals the handler saw.
import { createHash } from "crypto";
import { initBackend } from "../../src/engine/backend";
import { BinaryClassifier } from "../../src/model/head";
import { makeRng } from "../../src/rng";
import { benchTrainingStep } from "../../bench/training_step";

export interface SignalRun {
  losses: number[];
  weights: string;
  handled: number;
}

async function main(): Promise<void> {
  const steps = Number(process.argv[2]);
  await initBackend("native");
  let handled = 0;
  process.on("SIGUSR2", () => { handled++; });
  const net = new BinaryClassifier("b1", makeRng(3, "init"));
  const { step } = benchTrainingStep(net, 32, 8, [1, 0, 0, 0, 0, 1, 0, 0]);
  console.log("READY");
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    losses.push(step());
    await new Promise((resolve) => setImmediate(resolve));
  }
  console.log("TRAINED");
  // Signals still on their way arrive here, before the process ends.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const hash = createHash("sha256");
  for (const [key, value] of [...net.getWeights()].sort(([a], [b]) => a.localeCompare(b))) hash.update(key).update(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
  const run: SignalRun = { losses, weights: hash.digest("hex"), handled };
  console.log(JSON.stringify(run));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
