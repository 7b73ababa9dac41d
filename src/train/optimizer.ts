// PyTorch's SGD with momentum (dampening 0, no Nesterov, no weight decay) as a TF.js optimizer that
// updates parameters in groups: buf = m * buf + g; p -= lr * buf, per element exactly as PyTorch
// (and TF.js's MomentumOptimizer) write it, but with a handful of ops per group of parameters
// instead of 4 per parameter. Parameters whose shapes differ only along one axis (every BatchNorm
// gamma/beta and bias; the 1x1 convolutions with the same output width; the depthwise kernels of one
// size) are concatenated along it, updated as one tensor, and split back. For EfficientNet-B1 that
// is ~1,200 ops per step down to ~200 (a GPU pays a launch per op).
//
// Where this project's kernels run (native CPU engine), a group's step is one op instead of 7
// (BiasInitMomentumStep, tools/native/ops/momentum.cc; docs/performance.md, item 39): the same
// products and sums, each rounded on its own, so the same bits, in one pass over the group's values.
//
// Its minimize() computes gradients with frugal_backward.ts (TF.js's gradients, freeing memory
// during the backward pass as PyTorch does).
//
// Its state (the momentum buffers) is saved and restored by the parameter's state_dict key, each
// restored buffer checked against the parameter's shape. Before the first step there is no state,
// as in PyTorch (whose first step sets buf = g).
//
// May touch: @tensorflow/tfjs, the native backend (model/ops/native_backend.ts) and the variables it is given.
import * as tf from "@tensorflow/tfjs";
import { UserError } from "../errors";
import { kernelCpuOps, NativeKernelBackend } from "../model/ops/native_backend";
import { frugalVariableGrads } from "./frugal_backward";

/** A trainable variable and the key its optimizer state is saved under (its state_dict key). */
export interface NamedParameter {
  name: string;
  variable: tf.Variable;
}

/** Optimizer state by parameter key: the contract between the loop and whoever checkpoints it. */
export type OptimizerState = Array<{ name: string; tensor: tf.Tensor }>;

/** A checkpoint's optimizer state does not fit the model's parameters. */
export class OptimizerStateError extends UserError {
  override name = "OptimizerStateError";
}

interface Group {
  members: NamedParameter[];
  /** Concatenation axis (each member's size along it, in order, for the split). */
  axis: number;
  sizes: number[];
  /** The members' momentum buffers concatenated along `axis`; null before the first step. */
  buffer: tf.Tensor | null;
}

/**
 * Groups parameters that concatenate: rank 1 all together along axis 0; higher ranks along their
 * second-to-last axis (the input channels of HWIO and [in, out] weights) when all other dims agree;
 * each scalar alone.
 */
function groupParameters(params: readonly NamedParameter[]): Group[] {
  const groups = new Map<string, Group>();
  for (const p of params) {
    const shape = p.variable.shape;
    const axis = Math.max(0, shape.length - 2);
    // Scalars do not concatenate: each is a group of its own.
    const key = shape.length === 0 ? `scalar ${p.name}` : `${shape.length}:${shape.map((d, i) => (i === axis ? "*" : d)).join(",")}`;
    const g = groups.get(key) ?? { members: [], axis, sizes: [], buffer: null };
    g.members.push(p);
    g.sizes.push(shape[axis]);
    groups.set(key, g);
  }
  return [...groups.values()];
}

/** The state_dict key a checkpoint entry is for: its name, or TF.js MomentumOptimizer's "<variable>/momentum". */
function stateKey(name: string, keys: ReadonlySet<string>): string | null {
  if (keys.has(name)) return name;
  if (!name.endsWith("/momentum")) return null;
  const variable = name.slice(0, -"/momentum".length);
  // A second live model's variables carry a namespace prefix "m<k>/" (src/model/ops/variables.ts).
  const bare = variable.replace(/^m\d+\//, "");
  return keys.has(variable) ? variable : keys.has(bare) ? bare : null;
}

let momentumKernel = true;

/** false: each group's step as TensorFlow's 7 ops even where this project's kernels run (bench/momentum_step.ts). Default true. */
export function setMomentumKernel(on: boolean): void {
  momentumKernel = on;
}

export class GroupedMomentumSgd extends tf.Optimizer {
  static get className(): string {
    return "GroupedMomentumSgd";
  }

  private readonly groups: Group[];
  private readonly byVariableName = new Map<string, { group: Group; index: number }>();
  private readonly m: tf.Scalar;
  private readonly negLr: tf.Scalar;

  constructor(readonly learningRate: number, readonly momentum: number, params: readonly NamedParameter[]) {
    super();
    const names = new Set(params.map((p) => p.name));
    if (names.size !== params.length) throw new Error("src/train/optimizer.ts: parameter names must be unique");
    this.groups = groupParameters(params);
    for (const group of this.groups) group.members.forEach((p, index) => this.byVariableName.set(p.variable.name, { group, index }));
    this.m = tf.keep(tf.scalar(momentum));
    this.negLr = tf.keep(tf.scalar(-learningRate));
  }

  /** How many concatenated updates one step makes. */
  get groupCount(): number {
    return this.groups.length;
  }

  /** The loss and its gradients, with a backward pass that frees memory as it goes (frugal_backward.ts); same values as TF.js's. */
  override computeGradients(f: () => tf.Scalar, varList?: tf.Variable[]): { value: tf.Scalar; grads: tf.NamedTensorMap } {
    return frugalVariableGrads(f, varList ?? this.groups.flatMap((g) => g.members.map((p) => p.variable)));
  }

  /** One step over every parameter; each must have a gradient (a missing one is a bug in the model). */
  override applyGradients(variableGradients: tf.NamedTensorMap | OptimizerState): void {
    const grads = new Map<Group, tf.Tensor[]>();
    const list = Array.isArray(variableGradients) ? variableGradients : Object.keys(variableGradients).map((name) => ({ name, tensor: variableGradients[name] }));
    for (const { name, tensor } of list) {
      const at = this.byVariableName.get(name);
      if (at === undefined) throw new Error(`src/train/optimizer.ts: gradient for "${name}", which is not a parameter of this optimizer`);
      const g = grads.get(at.group) ?? new Array<tf.Tensor>(at.group.members.length);
      g[at.index] = tensor;
      grads.set(at.group, g);
    }
    for (const group of this.groups) {
      const g = grads.get(group);
      const missing = group.members.filter((_, i) => g === undefined || g[i] == null).map((p) => p.name);
      if (missing.length > 0) throw new Error(`src/train/optimizer.ts: no gradient for ${missing.join(", ")}; every parameter must take part in the loss`);
      this.stepGroup(group, g as tf.Tensor[]);
    }
    this.incrementIterations();
  }

  private stepGroup(group: Group, grads: tf.Tensor[]): void {
    const nb = momentumKernel ? kernelCpuOps() : null;
    if (nb !== null) {
      this.stepGroupNative(nb, group, grads);
      return;
    }
    const single = group.members.length === 1;
    const old = group.buffer;
    group.buffer = tf.tidy(() => {
      const g = single ? grads[0] : tf.concat(grads, group.axis);
      // PyTorch's first step sets buf = g (a zero buffer would give the same values).
      const buf = old === null ? (single ? g.clone() : g) : tf.add(tf.mul(this.m, old), g);
      const params = group.members.map((p) => p.variable);
      const updated = tf.add(tf.mul(this.negLr, buf), single ? params[0] : tf.concat(params, group.axis));
      const parts = single ? [updated] : tf.split(updated, group.sizes, group.axis);
      params.forEach((v, i) => v.assign(parts[i]));
      return buf;
    });
    old?.dispose();
  }

  /** stepGroup as one op of this project's kernels: the same values (bit for bit), one pass. */
  private stepGroupNative(nb: NativeKernelBackend, group: Group, grads: tf.Tensor[]): void {
    const B = nb.binding;
    const params = group.members.map((p) => p.variable);
    const attrs = [
      { name: "N", type: B.TF_ATTR_INT, value: params.length },
      { name: "axis", type: B.TF_ATTR_INT, value: group.axis },
      { name: "learning_rate", type: B.TF_ATTR_FLOAT, value: this.learningRate },
      { name: "momentum", type: B.TF_ATTR_FLOAT, value: this.momentum },
      { name: "first", type: B.TF_ATTR_BOOL, value: group.buffer === null },
    ];
    const old = group.buffer;
    const out = nb.executeMultipleOutputs("BiasInitMomentumStep", attrs, [...params, ...grads, old ?? grads[0]], params.length + 1);
    params.forEach((v, i) => v.assign(out[i]));
    tf.dispose(out.slice(0, params.length));
    group.buffer = tf.keep(out[params.length]);
    old?.dispose();
  }

  /** The momentum buffers by parameter key (fresh tensors: the caller disposes them); empty before the first step. */
  override async getWeights(): Promise<OptimizerState> {
    return this.state();
  }

  state(): OptimizerState {
    const out: OptimizerState = [];
    for (const group of this.groups) {
      const buffer = group.buffer;
      if (buffer === null) continue;
      const parts = group.members.length === 1 ? [buffer.clone()] : tf.split(buffer, group.sizes, group.axis);
      group.members.forEach((p, i) => out.push({ name: p.name, tensor: parts[i] }));
    }
    return out;
  }

  /**
   * Restores the buffers from `state`, by key, all or nothing: every parameter's buffer with its
   * exact shape, or none (the state before the first step). Also takes TF.js MomentumOptimizer's
   * names ("<key>/momentum", and its "iter" counter, ignored). Leaves `state`'s tensors to the caller.
   */
  override async setWeights(state: OptimizerState): Promise<void> {
    this.restore(state);
  }

  restore(state: OptimizerState): void {
    const params = this.groups.flatMap((g) => g.members);
    const keys = new Set(params.map((p) => p.name));
    const found = new Map<string, tf.Tensor>();
    const problems: string[] = [];
    for (const { name, tensor } of state) {
      if (name === "iter") continue;
      const key = stateKey(name, keys);
      if (key === null) problems.push(`"${name}" is not a parameter of this model`);
      else if (found.has(key)) problems.push(`"${key}" appears twice`);
      else found.set(key, tensor);
    }
    if (found.size > 0) {
      for (const p of params) {
        const t = found.get(p.name);
        if (t === undefined) problems.push(`no momentum buffer for "${p.name}"`);
        else if (t.dtype !== "float32" || t.shape.join(",") !== p.variable.shape.join(",")) {
          problems.push(`momentum buffer of "${p.name}" is ${t.dtype} [${t.shape.join(", ")}], the parameter float32 [${p.variable.shape.join(", ")}]`);
        }
      }
    }
    if (problems.length > 0) {
      throw new OptimizerStateError(`optimizer state: ${problems.length} problem(s), first: ${problems[0]}; ` +
        `the checkpoint was written for another model: delete it to restart the run from the beginning`);
    }
    for (const group of this.groups) {
      group.buffer?.dispose();
      group.buffer = found.size === 0 ? null
        : tf.tidy(() => (group.members.length === 1 ? (found.get(group.members[0].name) as tf.Tensor).clone()
          : tf.concat(group.members.map((p) => found.get(p.name) as tf.Tensor), group.axis)));
    }
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate, momentum: this.momentum };
  }

  override dispose(): void {
    for (const group of this.groups) {
      group.buffer?.dispose();
      group.buffer = null;
    }
    this.m.dispose();
    this.negLr.dispose();
  }
}
