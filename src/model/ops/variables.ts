// Initializers and the variable registry: torchvision's initial values (kaiming_normal_ fan_out,
// uniform, constants), drawn from the caller's seeded Rng on the CPU so initial weights are
// identical on every backend, and sets of TF.js variables named by PyTorch state_dict keys
// (VariableSpec), created, read and overwritten as a whole.
//
// May touch: @tensorflow/tfjs (creates, reads and assigns tf.Variables; reads the engine's
// registry of variable names) and the Rng it is given. Knows nothing of the layers or the model.
import * as tf from "@tensorflow/tfjs";
import type { Rng } from "../../rng";

/**
 * torch.nn.init.kaiming_normal_(mode="fan_out", nonlinearity="leaky_relu", a=0): normal with
 * std = sqrt(2 / fan_out), where fan_out = torch weight size(0) * kh * kw (for a depthwise weight
 * [C, 1, k, k] that is C * k * k).
 */
function kaimingNormalFanOut(size: number, fanOut: number, rng: Rng): Float32Array {
  const std = Math.sqrt(2 / fanOut);
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = rng.normal() * std;
  return values;
}

/** Uniform in [-bound, bound), as torch.nn.init.uniform_(-bound, bound). */
function uniformSymmetric(size: number, bound: number, rng: Rng): Float32Array {
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = (2 * rng.next() - 1) * bound;
  return values;
}

/** How one variable starts, in torchvision's terms. */
export type Init =
  | { kind: "kaimingNormalFanOut"; fanOut: number }
  | { kind: "uniform"; bound: number }
  | { kind: "constant"; value: number };

/** One entry of a model's state_dict, in the order PyTorch lists it. */
export interface VariableSpec {
  /** The PyTorch state_dict key, e.g. "features.0.1.running_var". */
  key: string;
  /** Shape of the TF.js variable (layouts: see the top of architecture.ts). */
  shape: number[];
  /** Shape of the same tensor in PyTorch. */
  torchShape: number[];
  /** false for BatchNorm running statistics (buffers, not parameters). */
  trainable: boolean;
  init: Init;
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function initialValues(spec: VariableSpec, rng: Rng): Float32Array {
  const size = sizeOf(spec.shape);
  switch (spec.init.kind) {
    case "kaimingNormalFanOut":
      return kaimingNormalFanOut(size, spec.init.fanOut, rng);
    case "uniform":
      return uniformSymmetric(size, spec.init.bound, rng);
    case "constant":
      return new Float32Array(size).fill(spec.init.value);
  }
}

// TF.js registers variables globally by name and refuses duplicates. A model's variables carry
// the bare state_dict keys when those are free (the usual case: one live model), else a prefix
// "m<k>/" with the smallest free k, so several models (both arms of a trial, say) can coexist.
function freeNamespace(firstKey: string): string {
  const taken = tf.engine().registeredVariables;
  if (taken[firstKey] === undefined) return "";
  for (let k = 1; ; k++) if (taken[`m${k}/${firstKey}`] === undefined) return `m${k}/`;
}

/**
 * Creates the variables of a plan in plan order, drawing their initial values from `rng` in that
 * order: the same plan and the same Rng keys give bit-identical weights.
 */
export function createVariables(plan: readonly VariableSpec[], rng: Rng): Map<string, tf.Variable> {
  const ns = plan.length > 0 ? freeNamespace(plan[0].key) : "";
  const vars = new Map<string, tf.Variable>();
  for (const spec of plan) {
    const values = initialValues(spec, rng);
    const initial = tf.tensor(values, spec.shape, "float32");
    vars.set(spec.key, tf.variable(initial, spec.trainable, ns + spec.key));
    initial.dispose(); // the variable holds its own reference to the data
  }
  return vars;
}

/** Copies of every variable's values, by key (safe to keep: later training does not change them). */
export function readWeights(vars: ReadonlyMap<string, tf.Variable>): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [key, v] of vars) out.set(key, Float32Array.from(v.dataSync() as Float32Array));
  return out;
}

/**
 * Overwrites every variable from `weights`, which must hold exactly the same keys with the same
 * sizes; nothing is written unless all of them match. `owner` names the model in errors.
 */
export function writeWeights(vars: ReadonlyMap<string, tf.Variable>, weights: ReadonlyMap<string, Float32Array>, owner: string): void {
  const missing = [...vars.keys()].filter((k) => !weights.has(k));
  const unexpected = [...weights.keys()].filter((k) => !vars.has(k));
  if (missing.length > 0 || unexpected.length > 0) {
    const show = (ks: string[]): string => (ks.length > 5 ? `${ks.slice(0, 5).join(", ")}, ... (${ks.length})` : ks.join(", "));
    throw new Error(`${owner}: setWeights: key mismatch; missing [${show(missing)}], unexpected [${show(unexpected)}]`);
  }
  for (const [key, v] of vars) {
    const values = weights.get(key) as Float32Array;
    if (values.length !== v.size) {
      throw new Error(`${owner}: setWeights: "${key}" has ${values.length} values, expected ${v.size} (shape [${v.shape.join(", ")}])`);
    }
  }
  for (const [key, v] of vars) {
    tf.tidy(() => v.assign(tf.tensor(weights.get(key) as Float32Array, v.shape, "float32")));
  }
}
