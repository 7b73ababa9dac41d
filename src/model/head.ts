// The experiment's model: an EfficientNet backbone (1000 ImageNet logits) followed by
// nn.Linear(1000, 1), whose bias is what the two arms initialize differently. The reference applies
// sigmoid in forward and BCELoss; here forward returns the logit and the loss applies the sigmoid.
//
// Variables: the backbone's torchvision keys plus "head.weight" (stored [1000, 1], PyTorch [1, 1000])
// and "head.bias" ([1]).
import * as tf from "@tensorflow/tfjs";
import type { Arm, ModelName } from "../config";
import type { Rng } from "../rng";
import { logit } from "../maths";
import { parameterCount } from "./architecture";
import { buildEfficientNet, EfficientNet, ForwardOptions } from "./efficientnet";
import { dense } from "./ops/layers";
import { createVariables, readWeights, VariableSpec, writeWeights } from "./ops/variables";

const WHERE = "src/model/head.ts";

/** nn.Linear(inFeatures, 1) default init: weight and bias uniform(+-1/sqrt(inFeatures)). */
function headPlan(inFeatures: number): VariableSpec[] {
  const init = { kind: "uniform", bound: 1 / Math.sqrt(inFeatures) } as const;
  return [
    { key: "head.weight", shape: [inFeatures, 1], torchShape: [1, inFeatures], trainable: true, init },
    { key: "head.bias", shape: [1], torchShape: [1], trainable: true, init },
  ];
}

/** Karpathy's init: the bias whose sigmoid is the positive rate, log(p / (1 - p)). */
export function positiveRateBias(positiveRate: number): number {
  if (!(positiveRate > 0 && positiveRate < 1)) {
    throw new Error(`${WHERE}: the positive rate must be in (0, 1), got ${positiveRate}`);
  }
  return logit(positiveRate);
}

export class BinaryClassifier {
  readonly backbone: EfficientNet;
  private readonly plan: VariableSpec[];
  private readonly headVars: Map<string, tf.Variable>;

  /**
   * torchvision's random init for the backbone, then nn.Linear's for the head, both drawn from
   * `rng` in that order: the two arms of a trial built from Rngs with the same keys have identical
   * weights until initHeadBias changes the bias of one.
   */
  constructor(name: ModelName, rng: Rng) {
    this.backbone = buildEfficientNet(name, rng);
    this.plan = headPlan(this.backbone.architecture.classifier.outFeatures);
    this.headVars = createVariables(this.plan, rng);
  }

  /** Logits [N] (apply sigmoid for probabilities). Options as for the backbone. */
  forward(x: tf.Tensor4D, opts: ForwardOptions): tf.Tensor1D {
    return tf.tidy(() => {
      const features = this.backbone.forward(x, opts);
      const logits = tf.add(dense(features, this.headVar("head.weight") as tf.Tensor2D), this.headVar("head.bias"));
      return tf.reshape(logits, [x.shape[0]]) as tf.Tensor1D;
    });
  }

  /**
   * vanilla keeps nn.Linear's default bias; positive_rate sets it to log(p / (1 - p));
   * positive_rate_zero_head also zeroes the head's weights (drawn like the others', so the rest of
   * the model stays identical across arms): every logit is then the bias, whatever the backbone
   * outputs, in train mode too.
   */
  initHeadBias(arm: Arm, positiveRate: number): void {
    if (arm === "vanilla") return;
    if (arm !== "positive_rate" && arm !== "positive_rate_zero_head") {
      throw new Error(`${WHERE}: unknown arm "${String(arm)}" (expected vanilla, positive_rate or positive_rate_zero_head)`);
    }
    const bias = positiveRateBias(positiveRate);
    tf.tidy(() => this.headVar("head.bias").assign(tf.tensor1d([bias], "float32")));
    if (arm === "positive_rate_zero_head") tf.tidy(() => this.headVar("head.weight").assign(tf.zerosLike(this.headVar("head.weight"))));
  }

  outputBias(): number {
    return this.headVar("head.bias").dataSync()[0];
  }

  trainableVariables(): tf.Variable[] {
    return [...this.backbone.trainableVariables(), ...this.plan.map((p) => this.headVar(p.key))];
  }

  /** Everything by key: torchvision keys (running stats included) then head.weight, head.bias. */
  namedVariables(): Map<string, tf.Variable> {
    const all = this.backbone.namedVariables();
    for (const [k, v] of this.headVars) all.set(k, v);
    return all;
  }

  /** Like sum(p.numel() for p in model.parameters()): 7,795,185 for B1. */
  parameterCount(): number {
    return this.backbone.parameterCount() + parameterCount(this.plan);
  }

  torchShapeOf(key: string): number[] {
    const p = this.plan.find((q) => q.key === key);
    return p ? [...p.torchShape] : this.backbone.torchShapeOf(key);
  }

  getWeights(): Map<string, Float32Array> {
    return readWeights(this.namedVariables());
  }

  setWeights(weights: ReadonlyMap<string, Float32Array>): void {
    writeWeights(this.namedVariables(), weights, `${WHERE} (binary classifier on efficientnet ${this.backbone.spec.name})`);
  }

  dispose(): void {
    this.backbone.dispose();
    for (const v of this.headVars.values()) v.dispose();
    this.headVars.clear();
  }

  private headVar(key: string): tf.Variable {
    const v = this.headVars.get(key);
    if (v === undefined) throw new Error(`${WHERE}: no variable "${key}" (disposed?)`);
    return v;
  }
}
