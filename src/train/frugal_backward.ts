// Gradients of a scalar loss with respect to variables, computed by TF.js's own tape and gradient
// functions, but freeing memory as the backward pass goes, as PyTorch's autograd does. TF.js's
// engine.gradients keeps every tensor saved for the backward pass and every intermediate
// gradient until the whole backward pass ends; here a node's saved tensors are released as soon
// as its gradient has been computed, and a tensor's gradient as soon as the node that produced
// the tensor has used it (walking the tape backwards, that node is the last one to need it).
// Same ops in the same order: the gradients are bit-identical to tf.variableGrads'.
//
// First-order only (the training step); reaches into the engine's tape state, which TF.js does
// not export as API: written against @tensorflow/tfjs-core 4.22 (engine.ts, tape.ts).
//
// May touch: @tensorflow/tfjs and its engine's tape state.
import * as tf from "@tensorflow/tfjs";

const WHERE = "src/train/frugal_backward.ts";

interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  gradient?: (dys: Array<tf.Tensor | null>) => Record<string, () => tf.Tensor>;
  saved?: tf.Tensor[];
}

interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  startTape(): void;
  endTape(): void;
  tidy<T extends tf.TensorContainer>(name: string, f: () => T): T;
}

/** The nodes on a path from some x to y, inputs not depending on any x pruned (tfjs-core's getFilteredNodesXToY). */
function nodesFromXsToY(tape: readonly TapeNode[], xs: readonly tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set<number>(xs.map((x) => x.id));
  const nodesFromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((t) => fromX.has(t.id))) {
      node.outputs.forEach((o) => fromX.add(o.id));
      nodesFromX.add(node.id);
    }
  }
  const toY = new Set<number>([y.id]);
  const nodesToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    if (node.outputs.some((o) => toY.has(o.id))) {
      Object.values(node.inputs).forEach((t) => toY.add(t.id));
      nodesToY.add(node.id);
    }
  }
  return tape.filter((n) => nodesFromX.has(n.id) && nodesToY.has(n.id)).map((n) => ({
    ...n,
    inputs: Object.fromEntries(Object.entries(n.inputs).filter(([, t]) => fromX.has(t.id))),
  }));
}

/** Walks the tape backwards from y, releasing what no later step needs; returns the gradient of each x. */
function backpropagate(engine: EngineInternals, nodes: readonly TapeNode[], xs: readonly tf.Tensor[], y: tf.Tensor): tf.Tensor[] {
  const keep = new Set(xs.map((x) => x.id));
  const grads = new Map<number, tf.Tensor>([[y.id, tf.onesLike(y)]]);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    if (node.gradient === undefined) throw new Error(`${WHERE}: no gradient function for ${node.kernelName}`);
    const dys = node.outputs.map((o) => grads.get(o.id) ?? null);
    const inputGradients = node.gradient(dys);
    for (const [name, x] of Object.entries(node.inputs)) {
      const gradOf = inputGradients[name];
      if (gradOf === undefined) throw new Error(`${WHERE}: ${node.kernelName} has no gradient for its input ${name}`);
      let dx = engine.tidy(`grad ${node.kernelName}`, () => gradOf());
      if (dx.dtype !== "float32" || !tf.util.arraysEqual(dx.shape, x.shape)) {
        throw new Error(`${WHERE}: the gradient of ${node.kernelName}'s input ${name} is ${dx.dtype} [${dx.shape}], the input [${x.shape}]`);
      }
      // A gradient function may hand back its dy itself; that one is released below.
      if (dys.includes(dx)) dx = dx.clone();
      const current = grads.get(x.id);
      if (current === undefined) {
        grads.set(x.id, dx);
      } else {
        grads.set(x.id, tf.add(current, dx));
        current.dispose();
        dx.dispose();
      }
    }
    for (const o of node.outputs) {
      if (keep.has(o.id)) continue;
      grads.get(o.id)?.dispose();
      grads.delete(o.id);
    }
    node.saved?.forEach((t) => t.dispose());
  }
  return xs.map((x) => grads.get(x.id) as tf.Tensor);
}

/**
 * Like tf.variableGrads(f, varList) (trainable variables only; those the loss does not reach get no
 * entry), with the backward pass freeing memory as it goes. Must not run inside another gradient computation.
 */
export function frugalVariableGrads(f: () => tf.Scalar, varList: readonly tf.Variable[]): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  const engine = tf.engine() as unknown as EngineInternals;
  if (engine.state.gradientDepth !== 0) throw new Error(`${WHERE}: gradients inside another gradient computation are not supported`);
  const xs = varList.filter((v) => v.trainable);
  if (xs.length === 0) throw new Error(`${WHERE}: no trainable variables to differentiate`);
  const value = engine.scopedRun(() => engine.startTape(), () => engine.endTape(), () => engine.tidy("forward", f));
  if (!(value instanceof tf.Tensor) || value.rank !== 0) throw new Error(`${WHERE}: the loss must be a scalar tensor`);
  const tape = engine.state.activeTape ?? [];
  try {
    const nodes = nodesFromXsToY(tape, xs, value);
    const grads = engine.tidy("backward", () => backpropagate(engine, nodes, xs, value));
    // As tf.variableGrads: a variable the loss does not depend on gets no entry.
    if (grads.every((g) => g === undefined)) throw new Error(`${WHERE}: the loss depends on none of the variables`);
    return { value, grads: Object.fromEntries(xs.flatMap((x, i) => (grads[i] === undefined ? [] : [[x.name, grads[i]]]))) };
  } finally {
    tape.forEach((node) => node.saved?.forEach((t) => t.dispose()));
    engine.state.activeTape = null;
  }
}
