// The EfficientNet backbone as TF.js variables and a hand-written forward pass over the layer API
// (ops/layers.ts), faithful to torchvision.models.efficientnet: the structure comes from
// architecture.ts; this file runs it. SE is SiLU then sigmoid; stochastic depth is in "row" mode;
// BatchNorm's running statistics follow PyTorch (see ops/layers.ts batchNormAct); padding is
// PyTorch's symmetric (k-1)/2, not TF's 'same'. In training, wide MBConv blocks can be recomputed
// in the backward pass instead of keeping their intermediates (setBlockRecompute).
//
// Variables carry torchvision's state_dict keys (layouts: see architecture.ts). The TF.js variable
// names (what tf.variableGrads and optimizer slots are keyed by) are the same keys while no other
// model with those keys is alive; a second live model gets "m1/<key>", etc. (see
// ops/variables.ts createVariables). Code that persists per-variable state should key it by
// namedVariables() keys, not by tf.Variable.name.
//
// Speed: on the pure-JS 'cpu' backend the convolutions, matrix products, BatchNorm+SiLU and the SE
// helpers run as fused plain-JS loops (ops/js_kernels.ts, ops/js_channel_kernels.ts); elsewhere
// they are TF.js ops. Same math.
//
// May touch: @tensorflow/tfjs (its engine's tape, in gradsInsideBackward), the layer API, the
// variable registry, and the model's own variables.
import * as tf from "@tensorflow/tfjs";
import type { ModelName } from "../config";
import type { Rng } from "../rng";
import {
  Architecture,
  ConvBnAct,
  efficientNetArchitecture,
  MBConvBlock,
  ModelSpec,
  parameterCount,
  SqueezeExcitationSpec,
  variablePlan,
} from "./architecture";
import {
  batchNormAct,
  batchNormResidual,
  BatchNormMode,
  BatchNormState,
  convBnAct as convBnActOp,
  convBnActThenDepthwise,
  depthwiseBeforeBatchNorm,
  depthwiseStageForEval,
  type ConvBnActUnit,
  dense,
  dropMask,
  fusingNativeOps,
  residualAdd,
  spatialMean,
} from "./ops/layers";
import { batchNormActSqueezeExcitationProject, type SqueezeExcitationParams, squeezeExcitationGate } from "./ops/squeeze_excitation";
import type { EvalFolds } from "./ops/native_eval";
import { createVariables, readWeights, VariableSpec, writeWeights } from "./ops/variables";

export interface ForwardOptions {
  /** Batch-statistics BatchNorm, dropout and stochastic depth (needs `rng`). */
  training: boolean;
  /** Training mode only: also update the BatchNorm running statistics (a real training step). */
  updateBatchNorm?: boolean;
  /** Source of the dropout and stochastic-depth masks; the same stream replays the same masks. */
  rng?: Rng;
  /** Evaluation only: BatchNorm folded into the convolutions once per evaluation pass, not per call (ops/native_eval.ts). */
  folds?: EvalFolds;
}

const WHERE = "src/model/efficientnet.ts";

/** A parameter tensor by state_dict key. */
type ParamLookup = (key: string) => tf.Tensor;

export type BlockRecompute = "auto" | "always" | "never";

/**
 * 8M floats = 32 MB for one expanded activation of the block. Chosen from measured peak RSS of a
 * B1 training step at 240x240 batch 16 with the optimizer's frugal backward pass
 * (bench/recompute_memory.ts, docs/performance.md): no recompute 3.03 GB (PyTorch: ~3.05 GB),
 * 8M 2.68 GB at the same CPU time, 4M 2.20 GB at +12%, 2M 2.02 GB at +24%.
 */
const RECOMPUTE_MIN_VALUES = 8 * 1024 * 1024;

/**
 * The same where layer fusion runs (ops/layers.ts fusingNativeOps), whose fused ops keep 2 or 3 of
 * a block's 5 wide tensors for the backward pass: 32M floats, so no block at 240x240 batch 16.
 * There (AVX2 guest, 3 alternating rounds) fusion without recompute peaked at 1.86-1.90 GB and
 * trained as fast as neither (7.6-8.2 against 7.7-8.2 img/s at 2.17-2.19 GB); fusion with stage 2's
 * first block recomputed took 1.73-1.94 GB at 5.6-6.9 img/s (docs/performance.md, item 21). Larger batches are not
 * measured: the first block of stage 2 reaches 32M at batch 24.
 */
const RECOMPUTE_MIN_VALUES_FUSED = 32 * 1024 * 1024;

let blockRecompute: BlockRecompute = "auto";
/** null: RECOMPUTE_MIN_VALUES, or RECOMPUTE_MIN_VALUES_FUSED where layer fusion runs. */
let recomputeMinValues: number | null = null;

/**
 * Gradient checkpointing of MBConv blocks in training. "auto" (default): on the native and GPU
 * backends, for blocks whose expanded activation has at least `minValues` values (default
 * RECOMPUTE_MIN_VALUES, or RECOMPUTE_MIN_VALUES_FUSED where layer fusion runs; at 240x240 batch 16 only the first block of stage 2, whose 16x120x120x96
 * expansion is the largest activation of the network; at batch 64 most blocks of stages 1-4; at
 * 32x32 batch 64 none, so small inputs pay no recompute). "always"/"never", and "auto" with
 * another threshold, for tests and benchmarks. Gradients, loss and running statistics are the
 * same in every mode (test/model.test.ts).
 */
export function setBlockRecompute(mode: BlockRecompute, minValues: number | null = null): void {
  blockRecompute = mode;
  recomputeMinValues = minValues;
}

/**
 * Runs tf.grads from inside a gradient function. TF.js's engine has one active tape: a nested
 * tf.grads would start a fresh tape over the outer one and, when done, set it to null, so the outer
 * backward pass then fails and leaks its saved tensors. The outer tape is finished while its
 * backward pass runs, so it is parked here and put back; the inner call frees its own intermediates.
 */
function gradsInsideBackward<T>(f: () => T): T {
  const state = (tf.engine() as unknown as { state: { activeTape: unknown; gradientDepth: number } }).state;
  if (state.gradientDepth !== 0) throw new Error(`${WHERE}: block recompute needs a first-order gradient (tape depth ${state.gradientDepth})`);
  const outerTape = state.activeTape;
  state.activeTape = null;
  try {
    return f();
  } finally {
    state.activeTape = outerTape;
  }
}

function shouldRecompute(x: tf.Tensor4D, b: MBConvBlock): boolean {
  if (blockRecompute !== "auto") return blockRecompute === "always";
  if (tf.getBackend() === "cpu") return false;
  const [n, h, w, c] = x.shape;
  const min = recomputeMinValues ?? (fusingNativeOps() !== null ? RECOMPUTE_MIN_VALUES_FUSED : RECOMPUTE_MIN_VALUES);
  return n * h * w * c * b.expandRatio >= min;
}

export class EfficientNet {
  readonly spec: ModelSpec;
  private readonly plan: VariableSpec[];
  private readonly bnStates = new Map<string, BatchNormState>();

  constructor(
    readonly architecture: Architecture,
    private readonly vars: Map<string, tf.Variable>,
  ) {
    this.spec = architecture.spec;
    this.plan = variablePlan(architecture);
    for (const p of this.plan) {
      if (!vars.has(p.key)) throw new Error(`${WHERE}: missing variable "${p.key}"`);
    }
    for (const p of this.plan) {
      if (!p.key.endsWith(".running_var")) continue;
      const bn = p.key.slice(0, -".running_var".length);
      this.bnStates.set(bn, {
        gamma: this.v(`${bn}.weight`),
        beta: this.v(`${bn}.bias`),
        runningMean: this.v(`${bn}.running_mean`),
        runningVar: this.v(`${bn}.running_var`),
        eps: this.spec.bnEps,
        momentum: this.spec.bnMomentum,
      });
    }
  }

  /** Logits [N, numClasses] for NHWC float32 images. */
  forward(x: tf.Tensor4D, opts: ForwardOptions): tf.Tensor2D {
    if (x.rank !== 4 || x.shape[3] !== 3 || x.dtype !== "float32") {
      throw new Error(`${WHERE}: forward expects NHWC float32 images [N, H, W, 3], got ${x.dtype} [${x.shape.join(", ")}]`);
    }
    const update = opts.updateBatchNorm ?? false;
    if (update && !opts.training) throw new Error(`${WHERE}: updateBatchNorm needs training: true`);
    const rng = opts.training ? opts.rng : undefined;
    if (opts.training && rng === undefined) {
      throw new Error(`${WHERE}: training mode needs opts.rng for the dropout and stochastic-depth masks`);
    }
    const mode: BatchNormMode = { training: opts.training, updateRunningStats: update, folds: opts.training ? undefined : opts.folds };
    const arch = this.architecture;
    return tf.tidy(() => {
      // One tidy per block frees its wide intermediates as soon as it is done (the tape, when
      // recording, keeps its own references): evaluation at 240x240 then holds about one block's
      // activations, not the whole network's.
      let h = this.convBnAct(x, arch.stem, mode);
      for (const block of arch.stages.flat()) {
        const input = h;
        h = tf.tidy(() => this.mbconv(input, block, mode, rng));
      }
      h = this.convBnAct(h, arch.top, mode);
      let pooled = spatialMean(h);
      const { prefix, dropout } = arch.classifier;
      if (rng !== undefined && dropout > 0) {
        pooled = tf.mul(pooled, tf.tensor2d(dropMask(pooled.size, dropout, rng), pooled.shape));
      }
      return tf.add(dense(pooled, this.v(`${prefix}.weight`) as tf.Tensor2D), this.v(`${prefix}.bias`)) as tf.Tensor2D;
    });
  }

  private v(key: string): tf.Variable {
    const found = this.vars.get(key);
    if (found === undefined) throw new Error(`${WHERE}: no variable "${key}"`);
    return found;
  }

  /** `get` maps a parameter key to its tensor: the variable itself, or its stand-in during a recompute. */
  private convBnAct(x: tf.Tensor4D, u: ConvBnAct, mode: BatchNormMode, get: ParamLookup = (k) => this.v(k), inputScale: tf.Tensor2D | null = null): tf.Tensor4D {
    const { conv, bn, activation } = this.unit(u, get);
    return convBnActOp(x, conv, bn, mode, activation, inputScale);
  }

  private unit(u: ConvBnAct, get: ParamLookup): ConvBnActUnit {
    const bn = `${u.prefix}.1`;
    return {
      conv: { kind: u.kind, weight: get(`${u.prefix}.0.weight`), stride: u.stride },
      bn: { ...(this.bnStates.get(bn) as BatchNormState), gamma: get(`${bn}.weight`), beta: get(`${bn}.bias`) },
      activation: u.activation,
    };
  }

  private seParams(se: SqueezeExcitationSpec, get: ParamLookup): SqueezeExcitationParams {
    return {
      w1: get(`${se.prefix}.fc1.weight`) as tf.Tensor2D, b1: get(`${se.prefix}.fc1.bias`) as tf.Tensor1D,
      w2: get(`${se.prefix}.fc2.weight`) as tf.Tensor2D, b2: get(`${se.prefix}.fc2.bias`) as tf.Tensor1D,
    };
  }

  /**
   * expand -> depthwise -> SE -> project, then for a residual block stochastic depth's row factor
   * (`keep`, drawn by the caller; null: none) and the sum with x. In training where this project's
   * kernels run, expand's BatchNorm with the depthwise convolution, SE with the projection, and the
   * projection's BatchNorm with the factor and the sum are one op each (ops/layers.ts
   * setLayerFusion); in evaluation there, expand's SiLU, the depthwise stage and SE's squeeze
   * (depthwiseStageForEval).
   */
  private mbconvBody(x: tf.Tensor4D, b: MBConvBlock, mode: BatchNormMode, get: ParamLookup, keep: Float32Array | null): tf.Tensor4D {
    const se = this.seParams(b.se, get);
    const project = this.unit(b.project, get);
    const first = b.expand ? this.unit(b.expand, get) : null;
    const depthwise = this.unit(b.depthwise, get);
    const skip = (y: tf.Tensor4D): tf.Tensor4D => (b.residual ? residualAdd(y, x, keep) : y);
    // Evaluation on this project's kernels: expand's SiLU, the depthwise stage and SE's squeeze in one op.
    const stage = depthwiseStageForEval(x, first, depthwise, mode);
    if (stage !== null) return skip(convBnActOp(stage.y, project.conv, project.bn, mode, project.activation, squeezeExcitationGate(stage.y, se, stage.pooled)));
    if (mode.training) {
      if (project.conv.kind !== "pointwise") throw new Error(`${WHERE}: ${b.project.prefix} is a ${project.conv.kind} convolution; MBConv's projection is 1x1`);
      const d = depthwiseBeforeBatchNorm(x, first, depthwise.conv, mode);
      const projected = batchNormActSqueezeExcitationProject(d, depthwise.bn, mode, depthwise.activation, se, project.conv.weight as tf.Tensor2D);
      // The projection's BatchNorm, stochastic depth and the residual: one op where layer fusion runs.
      if (b.residual) return batchNormResidual(projected, project.bn, mode, project.activation, x, keep);
      return batchNormAct(projected, project.bn, mode, project.activation);
    }
    const y = first !== null ? convBnActThenDepthwise(x, first, depthwise, mode) : convBnActOp(x, depthwise.conv, depthwise.bn, mode, depthwise.activation);
    // Evaluation: the projection scales its input by the gate, or folds the gate into its weights.
    return skip(convBnActOp(y, project.conv, project.bn, mode, project.activation, squeezeExcitationGate(y, se)));
  }

  /**
   * The block body as one differentiable op that keeps only its input for the backward pass and
   * runs the body again there (gradient checkpointing). TF.js's tape holds every intermediate of the
   * forward pass and every intermediate's gradient until the whole backward pass ends; for the
   * wide early blocks at 240x240 that is most of the memory. The recompute uses the batch
   * statistics again (same input, same values) without touching the running statistics a second time.
   */
  private recomputedMbconvBody(x: tf.Tensor4D, b: MBConvBlock, mode: BatchNormMode, keep: Float32Array | null): tf.Tensor4D {
    const keys = this.plan.filter((p) => p.trainable && p.key.startsWith(`${b.prefix}.`)).map((p) => p.key);
    const params = keys.map((k) => this.v(k));
    const lookup = (values: tf.Tensor[]): ParamLookup => {
      const byKey = new Map(keys.map((k, i) => [k, values[i]] as const));
      return (k) => byKey.get(k) ?? this.v(k);
    };
    const replay: BatchNormMode = { training: mode.training, updateRunningStats: false };
    const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const input = args[0] as tf.Tensor4D;
      (args[args.length - 1] as tf.GradSaveFunc)([input]);
      return {
        value: this.mbconvBody(input, b, mode, lookup(args.slice(1, -1) as tf.Tensor[]), keep),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
          gradsInsideBackward(() => tf.grads((...ts: tf.Tensor[]) => this.mbconvBody(ts[0] as tf.Tensor4D, b, replay, lookup(ts.slice(1)), keep))([saved[0], ...params], dy)),
      };
    });
    return op(x, ...params) as tf.Tensor4D;
  }

  private mbconv(x: tf.Tensor4D, b: MBConvBlock, mode: BatchNormMode, rng: Rng | undefined): tf.Tensor4D {
    // Stochastic depth's row mask (the body draws nothing from rng, so drawing it first keeps the stream).
    const keep = b.residual && rng !== undefined && b.stochasticDepthProb > 0 ? dropMask(x.shape[0], b.stochasticDepthProb, rng) : null;
    const recompute = mode.training && shouldRecompute(x, b);
    return recompute ? this.recomputedMbconvBody(x, b, mode, keep) : this.mbconvBody(x, b, mode, (k) => this.v(k), keep);
  }

  /** Every variable by torchvision key, running statistics included (a copy of the map, same variables). */
  namedVariables(): Map<string, tf.Variable> {
    return new Map(this.vars);
  }

  /** Parameters (what model.parameters() yields in PyTorch): weights, biases, BN gamma/beta. */
  trainableVariables(): tf.Variable[] {
    return this.plan.filter((p) => p.trainable).map((p) => this.v(p.key));
  }

  parameterCount(): number {
    return parameterCount(this.plan);
  }

  /** The PyTorch shape of a state_dict key of this model. */
  torchShapeOf(key: string): number[] {
    const p = this.plan.find((q) => q.key === key);
    if (p === undefined) throw new Error(`${WHERE}: "${key}" is not a key of efficientnet ${this.spec.name}`);
    return [...p.torchShape];
  }

  /** All variables in state_dict order, with both shapes. */
  variablePlan(): VariableSpec[] {
    return this.plan.map((p) => ({ ...p, shape: [...p.shape], torchShape: [...p.torchShape] }));
  }

  getWeights(): Map<string, Float32Array> {
    return readWeights(this.vars);
  }

  setWeights(weights: ReadonlyMap<string, Float32Array>): void {
    writeWeights(this.vars, weights, `${WHERE} (efficientnet ${this.spec.name})`);
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    this.vars.clear();
  }
}

/** torchvision's random init for this model, drawn from `rng` in state_dict order. */
export function buildEfficientNet(name: ModelName, rng: Rng): EfficientNet {
  const arch = efficientNetArchitecture(name);
  return new EfficientNet(arch, createVariables(variablePlan(arch), rng));
}
