// EfficientNet B0 / B1 (and a scaled-down "tiny") as explicit TF.js variables and a hand-written
// forward pass, faithful to torchvision.models.efficientnet (torchvision 0.28, read from its source):
//
// - Stage table, width/depth scaling (_make_divisible(ch * width, 8), ceil(layers * depth)), block
//   order, SE (squeeze = max(1, block_input // 4), SiLU then sigmoid), stochastic depth
//   0.2 * block_index / total_blocks in "row" mode on residual blocks only, dropout before the
//   classifier, last conv 4 * last stage channels, init (conv kaiming_normal_ fan_out, BN 1/0,
//   Linear uniform(+-1/sqrt(out_features)) with zero bias).
// - BatchNorm: B0 and B1 use plain nn.BatchNorm2d: eps 1e-5, momentum 0.1 (only B5-B7 and the V2
//   models pass eps=1e-3 in torchvision). Running stats follow PyTorch (see ops.ts batchNormAct).
// - Padding is PyTorch's symmetric (k-1)/2, not TF's 'same'.
//
// Variable names are EXACTLY torchvision's state_dict keys (num_batches_tracked omitted). Layouts,
// for a loader mapping a PyTorch tensor t onto these variables:
// - every Conv2d weight (stem, expand, project, last conv, SE fc1/fc2): HWIO [kh, kw, in, out]
//   = t.permute(2, 3, 1, 0). SE fc1/fc2 are stored as HWIO [1, 1, in, out] like any 1x1 conv.
// - depthwise weight: TF depthwise layout [kh, kw, C, 1]. PyTorch's is [C, 1, kh, kw]; its
//   t.permute(2, 3, 1, 0) is [kh, kw, 1, C], which has the same memory order, so the same permute
//   followed by a reshape to [kh, kw, C, 1] is right.
// - Linear weight (classifier.1.weight): [in, out] = t.T. Biases and BatchNorm
//   weight/bias/running_mean/running_var: [C] as in PyTorch.
// `torchShapeOf(key)` / `variablePlan()` give each key's PyTorch shape next to the TF.js one.
// The TF.js variable names (what tf.variableGrads and optimizer slots are keyed by) are the same
// keys while no other model with those keys is alive; a second live model gets "m1/<key>", etc.
// (see ops.ts createVariables). Code that persists per-variable state should key it by
// namedVariables() keys, not by tf.Variable.name.
//
// Speed: on the pure-JS 'cpu' backend the convolutions, matrix products, BatchNorm+SiLU and the SE
// helpers run as fused plain-JS loops (ops.ts); elsewhere they are TF.js ops. Same math.
import * as tf from "@tensorflow/tfjs";
import type { ModelName } from "../config";
import type { Rng } from "../rng";
import {
  batchNormAct,
  BatchNormMode,
  BatchNormState,
  createVariables,
  dense,
  dropMask,
  pointwiseConv,
  readWeights,
  scaleChannels,
  scaleRows,
  silu,
  spatialMean,
  sizeOf,
  symmetricConv,
  symmetricDepthwiseConv,
  VariableSpec,
  writeWeights,
} from "./ops";

export interface ModelSpec {
  name: ModelName;
  widthMult: number;
  depthMult: number;
  /** Dropout before the classifier. */
  dropout: number;
  /** Stochastic depth of the last block; block i of n gets this * i / n. */
  stochasticDepthProb: number;
  numClasses: number;
  bnEps: number;
  bnMomentum: number;
}

const TORCHVISION_DEFAULTS = { stochasticDepthProb: 0.2, numClasses: 1000, bnEps: 1e-5, bnMomentum: 0.1 };

export const MODEL_SPECS: Readonly<Record<ModelName, ModelSpec>> = {
  b0: { name: "b0", widthMult: 1.0, depthMult: 1.0, dropout: 0.2, ...TORCHVISION_DEFAULTS },
  b1: { name: "b1", widthMult: 1.0, depthMult: 1.1, dropout: 0.2, ...TORCHVISION_DEFAULTS },
  // Not a torchvision model, but torchvision's builder with other multipliers
  // (EfficientNet(_efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.5)[0], 0.2)
  // has the same keys and 519,822 parameters). Depth 0.5 keeps residual blocks, hence stochastic
  // depth, in stages 4-6; width 0.25 makes a CPU train step cheap.
  tiny: { name: "tiny", widthMult: 0.25, depthMult: 0.5, dropout: 0.2, ...TORCHVISION_DEFAULTS },
};

/** torchvision's EfficientNet-B0 table: expand_ratio, kernel, stride, input_channels, out_channels, num_layers. */
const B0_STAGES: ReadonlyArray<readonly [number, number, number, number, number, number]> = [
  [1, 3, 1, 32, 16, 1],
  [6, 3, 2, 16, 24, 2],
  [6, 5, 2, 24, 40, 2],
  [6, 3, 2, 40, 80, 3],
  [6, 5, 1, 80, 112, 3],
  [6, 5, 2, 112, 192, 4],
  [6, 3, 1, 192, 320, 1],
];

/** torchvision's _make_divisible: round to the nearest multiple of `divisor`, never more than 10% down. */
export function makeDivisible(v: number, divisor: number, minValue: number = divisor): number {
  let newV = Math.max(minValue, Math.floor(Math.trunc(v + divisor / 2) / divisor) * divisor);
  if (newV < 0.9 * v) newV += divisor;
  return newV;
}

/** MBConvConfig.adjust_depth. */
export function adjustDepth(numLayers: number, depthMult: number): number {
  return Math.ceil(numLayers * depthMult);
}

/** Conv2dNormActivation: conv (no bias) -> BatchNorm2d -> optional SiLU, keys `${prefix}.0.*`, `${prefix}.1.*`. */
export interface ConvBnAct {
  prefix: string;
  kind: "full" | "depthwise" | "pointwise";
  inChannels: number;
  outChannels: number;
  kernel: number;
  stride: number;
  activation: boolean;
}

export interface SqueezeExcitationSpec {
  prefix: string;
  channels: number;
  squeezeChannels: number;
}

export interface MBConvBlock {
  /** e.g. "features.3.1" (stage 3, second block); its layers are under `${prefix}.block.`. */
  prefix: string;
  expandRatio: number;
  kernel: number;
  stride: number;
  inputChannels: number;
  outChannels: number;
  expand: ConvBnAct | null;
  depthwise: ConvBnAct;
  se: SqueezeExcitationSpec;
  project: ConvBnAct;
  residual: boolean;
  stochasticDepthProb: number;
}

export interface Architecture {
  spec: ModelSpec;
  stem: ConvBnAct;
  /** stages[i] is features.(i+1). */
  stages: MBConvBlock[][];
  top: ConvBnAct;
  classifier: { prefix: string; inFeatures: number; outFeatures: number; dropout: number };
}

function mbconvBlock(prefix: string, expandRatio: number, kernel: number, stride: number, inC: number, outC: number, sdProb: number): MBConvBlock {
  const expanded = makeDivisible(inC * expandRatio, 8);
  const layers = `${prefix}.block`;
  let next = 0;
  const expand: ConvBnAct | null =
    expanded !== inC
      ? { prefix: `${layers}.${next++}`, kind: "pointwise", inChannels: inC, outChannels: expanded, kernel: 1, stride: 1, activation: true }
      : null;
  const depthwise: ConvBnAct = { prefix: `${layers}.${next++}`, kind: "depthwise", inChannels: expanded, outChannels: expanded, kernel, stride, activation: true };
  const se: SqueezeExcitationSpec = { prefix: `${layers}.${next++}`, channels: expanded, squeezeChannels: Math.max(1, Math.floor(inC / 4)) };
  const project: ConvBnAct = { prefix: `${layers}.${next++}`, kind: "pointwise", inChannels: expanded, outChannels: outC, kernel: 1, stride: 1, activation: false };
  return {
    prefix,
    expandRatio,
    kernel,
    stride,
    inputChannels: inC,
    outChannels: outC,
    expand,
    depthwise,
    se,
    project,
    residual: stride === 1 && inC === outC,
    stochasticDepthProb: sdProb,
  };
}

/** The layer structure torchvision builds for this model (no tensors). */
export function efficientNetArchitecture(name: ModelName): Architecture {
  const spec = MODEL_SPECS[name];
  if (spec === undefined) throw new Error(`src/model/efficientnet.ts: unknown model "${String(name)}" (expected b0, b1 or tiny)`);
  const stages = B0_STAGES.map(([e, k, s, i, o, n]) => ({
    expandRatio: e,
    kernel: k,
    stride: s,
    inC: makeDivisible(i * spec.widthMult, 8),
    outC: makeDivisible(o * spec.widthMult, 8),
    layers: adjustDepth(n, spec.depthMult),
  }));
  const totalBlocks = stages.reduce((a, s) => a + s.layers, 0);
  let blockId = 0;
  const blocks = stages.map((st, si) => {
    const stage: MBConvBlock[] = [];
    for (let b = 0; b < st.layers; b++) {
      const sd = (spec.stochasticDepthProb * blockId) / totalBlocks;
      // As torchvision: only a stage's first block changes channels or strides.
      const inC = b === 0 ? st.inC : st.outC;
      const stride = b === 0 ? st.stride : 1;
      stage.push(mbconvBlock(`features.${si + 1}.${b}`, st.expandRatio, st.kernel, stride, inC, st.outC, sd));
      blockId++;
    }
    return stage;
  });
  const stemOut = stages[0].inC;
  const lastIn = stages[stages.length - 1].outC;
  const lastOut = 4 * lastIn;
  return {
    spec,
    stem: { prefix: "features.0", kind: "full", inChannels: 3, outChannels: stemOut, kernel: 3, stride: 2, activation: true },
    stages: blocks,
    top: { prefix: `features.${stages.length + 1}`, kind: "pointwise", inChannels: lastIn, outChannels: lastOut, kernel: 1, stride: 1, activation: true },
    classifier: { prefix: "classifier.1", inFeatures: lastOut, outFeatures: spec.numClasses, dropout: spec.dropout },
  };
}

function convBnActVariables(u: ConvBnAct): VariableSpec[] {
  const k = u.kernel;
  const torchShape = u.kind === "depthwise" ? [u.outChannels, 1, k, k] : [u.outChannels, u.inChannels, k, k];
  const shape = u.kind === "depthwise" ? [k, k, u.inChannels, 1] : [k, k, u.inChannels, u.outChannels];
  const c = [u.outChannels];
  const bn = `${u.prefix}.1`;
  return [
    { key: `${u.prefix}.0.weight`, shape, torchShape, trainable: true, init: { kind: "kaimingNormalFanOut", fanOut: torchShape[0] * k * k } },
    { key: `${bn}.weight`, shape: c, torchShape: c, trainable: true, init: { kind: "constant", value: 1 } },
    { key: `${bn}.bias`, shape: c, torchShape: c, trainable: true, init: { kind: "constant", value: 0 } },
    { key: `${bn}.running_mean`, shape: c, torchShape: c, trainable: false, init: { kind: "constant", value: 0 } },
    { key: `${bn}.running_var`, shape: c, torchShape: c, trainable: false, init: { kind: "constant", value: 1 } },
  ];
}

function squeezeExcitationVariables(se: SqueezeExcitationSpec): VariableSpec[] {
  const { channels: c, squeezeChannels: s } = se;
  const zeros = { kind: "constant", value: 0 } as const;
  return [
    { key: `${se.prefix}.fc1.weight`, shape: [1, 1, c, s], torchShape: [s, c, 1, 1], trainable: true, init: { kind: "kaimingNormalFanOut", fanOut: s } },
    { key: `${se.prefix}.fc1.bias`, shape: [s], torchShape: [s], trainable: true, init: zeros },
    { key: `${se.prefix}.fc2.weight`, shape: [1, 1, s, c], torchShape: [c, s, 1, 1], trainable: true, init: { kind: "kaimingNormalFanOut", fanOut: c } },
    { key: `${se.prefix}.fc2.bias`, shape: [c], torchShape: [c], trainable: true, init: zeros },
  ];
}

/** Every state_dict entry (without num_batches_tracked), in PyTorch's order. */
export function variablePlan(arch: Architecture): VariableSpec[] {
  const plan: VariableSpec[] = [...convBnActVariables(arch.stem)];
  for (const block of arch.stages.flat()) {
    if (block.expand) plan.push(...convBnActVariables(block.expand));
    plan.push(...convBnActVariables(block.depthwise), ...squeezeExcitationVariables(block.se), ...convBnActVariables(block.project));
  }
  plan.push(...convBnActVariables(arch.top));
  const { prefix, inFeatures: i, outFeatures: o } = arch.classifier;
  plan.push(
    { key: `${prefix}.weight`, shape: [i, o], torchShape: [o, i], trainable: true, init: { kind: "uniform", bound: 1 / Math.sqrt(o) } },
    { key: `${prefix}.bias`, shape: [o], torchShape: [o], trainable: true, init: { kind: "constant", value: 0 } },
  );
  return plan;
}

export interface ForwardOptions {
  /** Batch-statistics BatchNorm, dropout and stochastic depth (needs `rng`). */
  training: boolean;
  /** Training mode only: also update the BatchNorm running statistics (a real training step). */
  updateBatchNorm?: boolean;
  /** Source of the dropout and stochastic-depth masks; the same stream replays the same masks. */
  rng?: Rng;
}

const WHERE = "src/model/efficientnet.ts";

/** A parameter tensor by state_dict key. */
type ParamLookup = (key: string) => tf.Tensor;

export type BlockRecompute = "auto" | "always" | "never";
let blockRecompute: BlockRecompute = "auto";

/**
 * Gradient checkpointing of MBConv blocks in training. "auto" (default): on the native and GPU
 * backends, for blocks whose expanded activation has at least RECOMPUTE_MIN_VALUES values (at
 * 240x240 batch 16: stages 1-3, the first block of stage 4, the later blocks of stage 5 and the first of
 * stage 6 (13 of 23); at 32x32 batch 64: none, so small
 * inputs pay no recompute). Measured at 240x240 batch 16 (docs/performance.md): peak RSS 7.5 GB
 * without, 3.7 GB with this threshold, 2.6 GB with every block. "always"/"never" for tests and benchmarks.
 */
export function setBlockRecompute(mode: BlockRecompute): void {
  blockRecompute = mode;
}

/** 2M floats = 8 MB for one expanded activation of the block (4M gave 5.2 GB peak, 1M 2.6 GB but 30% slower). */
const RECOMPUTE_MIN_VALUES = 2 * 1024 * 1024;

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
  return n * h * w * c * b.expandRatio >= RECOMPUTE_MIN_VALUES;
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
    const mode: BatchNormMode = { training: opts.training, updateRunningStats: update };
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
  private convBnAct(x: tf.Tensor4D, u: ConvBnAct, mode: BatchNormMode, get: ParamLookup = (k) => this.v(k)): tf.Tensor4D {
    const w = get(`${u.prefix}.0.weight`) as tf.Tensor4D;
    let y: tf.Tensor4D;
    if (u.kind === "pointwise") y = pointwiseConv(x, w);
    else if (u.kind === "depthwise") y = symmetricDepthwiseConv(x, w, u.stride);
    else y = symmetricConv(x, w, u.stride);
    const bn = `${u.prefix}.1`;
    const state = { ...(this.bnStates.get(bn) as BatchNormState), gamma: get(`${bn}.weight`), beta: get(`${bn}.bias`) };
    return batchNormAct(y, state, mode, u.activation);
  }

  private squeezeExcitation(x: tf.Tensor4D, se: SqueezeExcitationSpec, get: ParamLookup): tf.Tensor4D {
    const c = x.shape[3];
    const s = se.squeezeChannels;
    // On a 1x1 map the SE convolutions are plain matrix products, on every backend.
    const pooled = spatialMean(x);
    const fc1 = tf.add(dense(pooled, tf.reshape(get(`${se.prefix}.fc1.weight`), [c, s])), get(`${se.prefix}.fc1.bias`));
    const fc2 = tf.add(dense(silu(fc1) as tf.Tensor2D, tf.reshape(get(`${se.prefix}.fc2.weight`), [s, c])), get(`${se.prefix}.fc2.bias`));
    return scaleChannels(x, tf.sigmoid(fc2) as tf.Tensor2D);
  }

  /** expand -> depthwise -> SE -> project: the part of an MBConv block before stochastic depth and the residual. */
  private mbconvBody(x: tf.Tensor4D, b: MBConvBlock, mode: BatchNormMode, get: ParamLookup): tf.Tensor4D {
    let y = x;
    if (b.expand) y = this.convBnAct(y, b.expand, mode, get);
    y = this.convBnAct(y, b.depthwise, mode, get);
    y = this.squeezeExcitation(y, b.se, get);
    return this.convBnAct(y, b.project, mode, get);
  }

  /**
   * The block body as one differentiable op that keeps only its input for the backward pass and
   * runs the body again there (gradient checkpointing). TF.js's tape holds every intermediate of the
   * forward pass and every intermediate's gradient until the whole backward pass ends; for the
   * wide early blocks at 240x240 that is most of the memory. The recompute uses the batch
   * statistics again (same input, same values) without touching the running statistics a second time.
   */
  private recomputedMbconvBody(x: tf.Tensor4D, b: MBConvBlock, mode: BatchNormMode): tf.Tensor4D {
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
        value: this.mbconvBody(input, b, mode, lookup(args.slice(1, -1) as tf.Tensor[])),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
          gradsInsideBackward(() => tf.grads((...ts: tf.Tensor[]) => this.mbconvBody(ts[0] as tf.Tensor4D, b, replay, lookup(ts.slice(1))))([saved[0], ...params], dy)),
      };
    });
    return op(x, ...params) as tf.Tensor4D;
  }

  private mbconv(x: tf.Tensor4D, b: MBConvBlock, mode: BatchNormMode, rng: Rng | undefined): tf.Tensor4D {
    const recompute = mode.training && shouldRecompute(x, b);
    let y = recompute ? this.recomputedMbconvBody(x, b, mode) : this.mbconvBody(x, b, mode, (k) => this.v(k));
    if (!b.residual) return y;
    if (rng !== undefined && b.stochasticDepthProb > 0) {
      y = scaleRows(y, dropMask(y.shape[0], b.stochasticDepthProb, rng));
    }
    return tf.add(y, x);
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
    return this.plan.filter((p) => p.trainable).reduce((a, p) => a + sizeOf(p.shape), 0);
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

export interface StageSummary {
  /** "features.0" ... "features.8", "classifier". */
  stage: string;
  description: string;
  blocks: number;
  inChannels: number;
  outChannels: number;
  /** Feature-map side after this stage for the given input side. */
  outputSize: number;
  params: number;
}

function convOutputSize(size: number, kernel: number, stride: number): number {
  return Math.floor((size + 2 * ((kernel - 1) / 2) - kernel) / stride) + 1;
}

/** Per-stage table (parameters as in model.parameters()) for the notebook; allocates no tensors. */
export function summarizeEfficientNet(name: ModelName, inputSize = 32): StageSummary[] {
  const arch = efficientNetArchitecture(name);
  const plan = variablePlan(arch);
  const paramsUnder = (prefix: string): number =>
    plan.filter((p) => p.trainable && p.key.startsWith(`${prefix}.`)).reduce((a, p) => a + sizeOf(p.shape), 0);
  const rows: StageSummary[] = [];
  let size = convOutputSize(inputSize, arch.stem.kernel, arch.stem.stride);
  rows.push({ stage: "features.0", description: "Conv3x3 s2 + BN + SiLU", blocks: 1, inChannels: 3, outChannels: arch.stem.outChannels, outputSize: size, params: paramsUnder("features.0") });
  arch.stages.forEach((blocks, i) => {
    const first = blocks[0];
    size = convOutputSize(size, first.kernel, first.stride);
    rows.push({
      stage: `features.${i + 1}`,
      description: `MBConv${first.expandRatio} k${first.kernel}x${first.kernel} s${first.stride} + SE`,
      blocks: blocks.length,
      inChannels: first.inputChannels,
      outChannels: first.outChannels,
      outputSize: size,
      params: paramsUnder(`features.${i + 1}`),
    });
  });
  rows.push({ stage: arch.top.prefix, description: "Conv1x1 + BN + SiLU", blocks: 1, inChannels: arch.top.inChannels, outChannels: arch.top.outChannels, outputSize: size, params: paramsUnder(arch.top.prefix) });
  const c = arch.classifier;
  rows.push({ stage: "classifier", description: `AvgPool + Dropout(${c.dropout}) + Linear`, blocks: 1, inChannels: c.inFeatures, outChannels: c.outFeatures, outputSize: 1, params: paramsUnder("classifier") });
  return rows;
}
