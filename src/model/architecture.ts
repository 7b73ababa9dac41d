// The structure of EfficientNet B0 / B1 (and a scaled-down "tiny"), as torchvision builds it
// (torchvision.models.efficientnet 0.28, read from its source), without any tensor: model specs,
// the stage table with width/depth scaling, the MBConv block specs, every state_dict entry with
// its shapes and initializer (variablePlan), parameter counts, and the per-stage summary tables.
//
// - Stage table, width/depth scaling (_make_divisible(ch * width, 8), ceil(layers * depth)), block
//   order, SE (squeeze = max(1, block_input // 4)), stochastic depth 0.2 * block_index /
//   total_blocks on residual blocks only, dropout before the classifier, last conv 4 * last stage
//   channels, init (conv kaiming_normal_ fan_out, BN 1/0, Linear uniform(+-1/sqrt(out_features))
//   with zero bias).
// - BatchNorm: B0 and B1 use plain nn.BatchNorm2d: eps 1e-5, momentum 0.1 (only B5-B7 and the V2
//   models pass eps=1e-3 in torchvision).
//
// Variable names are EXACTLY torchvision's state_dict keys (num_batches_tracked omitted). Layouts,
// for a loader mapping a PyTorch tensor t onto these variables:
// - the stem's 3x3 Conv2d weight: HWIO [kh, kw, in, out] = t.permute(2, 3, 1, 0).
// - every 1x1 Conv2d weight (expand, project, last conv, SE fc1/fc2): [in, out], the matrix their
//   matrix product takes = t.permute(2, 3, 1, 0) (HWIO [1, 1, in, out]: the same memory order)
//   reshaped to 2-D.
// - depthwise weight: TF depthwise layout [kh, kw, C, 1]. PyTorch's is [C, 1, kh, kw]; its
//   t.permute(2, 3, 1, 0) is [kh, kw, 1, C], which has the same memory order, so the same permute
//   followed by a reshape to [kh, kw, C, 1] is right.
// - Linear weight (classifier.1.weight): [in, out] = t.T. Biases and BatchNorm
//   weight/bias/running_mean/running_var: [C] as in PyTorch.
// `variablePlan()` gives each key's PyTorch shape next to the TF.js one.
//
// May touch: nothing but plain data (imports only types, ops/variables.ts's sizeOf and ops/padding.ts).
import type { ModelName } from "../config";
import { convOutputSize } from "./ops/padding";
import { sizeOf, VariableSpec } from "./ops/variables";

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
function adjustDepth(numLayers: number, depthMult: number): number {
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
  if (spec === undefined) throw new Error(`src/model/architecture.ts: unknown model "${String(name)}" (expected b0, b1 or tiny)`);
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
  const shape = u.kind === "depthwise" ? [k, k, u.inChannels, 1] : u.kind === "pointwise" ? [u.inChannels, u.outChannels] : [k, k, u.inChannels, u.outChannels];
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
    { key: `${se.prefix}.fc1.weight`, shape: [c, s], torchShape: [s, c, 1, 1], trainable: true, init: { kind: "kaimingNormalFanOut", fanOut: s } },
    { key: `${se.prefix}.fc1.bias`, shape: [s], torchShape: [s], trainable: true, init: zeros },
    { key: `${se.prefix}.fc2.weight`, shape: [s, c], torchShape: [c, s, 1, 1], trainable: true, init: { kind: "kaimingNormalFanOut", fanOut: c } },
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

/** Trainable values (what sum(p.numel() for p in model.parameters()) counts) of a plan, or of its keys under `prefix.`. */
export function parameterCount(plan: readonly VariableSpec[], prefix?: string): number {
  const counted = plan.filter((p) => p.trainable && (prefix === undefined || p.key.startsWith(`${prefix}.`)));
  return counted.reduce((a, p) => a + sizeOf(p.shape), 0);
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

/** Per-stage table (parameters as in model.parameters()) for the notebook; allocates no tensors. */
export function summarizeEfficientNet(name: ModelName, inputSize = 32): StageSummary[] {
  const arch = efficientNetArchitecture(name);
  const plan = variablePlan(arch);
  const paramsUnder = (prefix: string): number => parameterCount(plan, prefix);
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

/**
 * The walkthrough's model table: the per-stage summary plus the binary head's row, and the
 * parameter count of backbone and head together (7,795,185 for B1, as torchvision + Linear(1000, 1)).
 */
export function modelSummaryTable(model: ModelName, inputSize: number): { table: { columns: string[]; values: Array<Array<string | number>> }; parameters: number } {
  const stages = summarizeEfficientNet(model, inputSize);
  const featureCount = stages[stages.length - 1].outChannels;
  const head = featureCount + 1; // Linear(1000, 1): weight + bias
  const values: Array<Array<string | number>> = stages.map((s) => [s.stage, s.description, s.blocks, s.inChannels, s.outChannels, s.outputSize, s.params]);
  values.push(["head", `Linear(${featureCount}, 1), bias = the arm's init`, 1, featureCount, 1, 1, head]);
  const parameters = stages.reduce((a, s) => a + s.params, 0) + head;
  return { table: { columns: ["stage", "layers", "blocks", "in", "out", "output side", "parameters"], values }, parameters };
}
