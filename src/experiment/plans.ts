// What each notebook trains, as overrides on the preset: one name per run, so that every run a
// notebook makes can also be started headless (`make run ARGS="--plan convergence"`). The ImageNet
// and scratch halves share one store (the grid selection is not part of the results key).
import { ConfigError, ConfigOverrides, mergeOverrides, PresetName, PRESET_CONFIGS, SWEEP } from "../config";

export type PlanName = "imagenet" | "scratch" | "convergence" | "demo" | "sweep";
export const PLANS: readonly PlanName[] = ["imagenet", "scratch", "convergence", "demo", "sweep"];

/** Epochs of the convergence run (the reference: 20 epochs from scratch, 2 trials). */
export const CONVERGENCE_EPOCHS: Readonly<Record<PresetName, number>> = { full: 20, quick: 6, smoke: 4 };

/** The notebook that trains each plan (what to run when its results are missing). */
export const PLAN_NOTEBOOK: Readonly<Record<PlanName, string>> = {
  imagenet: "01_imagenet_weights", scratch: "02_from_scratch", convergence: "03_convergence", demo: "00_walkthrough", sweep: "05_imbalance_sweep",
};

/** The target positive rates a plan runs, one store each (src/experiment/sweep.ts); null: the data's own rate. */
export function planRates(plan: PlanName | null, preset: PresetName): readonly number[] | null {
  return plan === "sweep" ? SWEEP.rates[preset] : null;
}

export function planOverrides(plan: PlanName, preset: PresetName): ConfigOverrides {
  switch (plan) {
    case "imagenet":
      return { backbones: ["imagenet"] };
    case "scratch":
      return { backbones: ["scratch"] };
    case "convergence":
      return { backbones: ["scratch"], epochs: CONVERGENCE_EPOCHS[preset], trials: Math.min(2, PRESET_CONFIGS[preset].trials) };
    case "demo":
      // Twenty steps of the tiny model (batch 32) with a large learning rate: enough for the
      // per-step loss to show the hockey stick in seconds on any backend. The experiment itself
      // uses the preset's model, batch and lr. After twenty steps the running BatchNorm statistics
      // lag the weights, so eval-mode test metrics can look absurd (an ROC-AUC far below 0.5):
      // "both" puts the train-mode evaluation (batch statistics) beside them, labelled.
      return { model: "tiny", backbones: ["scratch"], trials: 1, epochs: 1, lr: 0.05, trainBatch: 32, evalMode: "both", data: { trainLimit: 640, testLimit: 256 } };
    case "sweep":
      // The scratch half at each of planRates' rates, on a test subset large enough for the lowest.
      return mergeOverrides({ backbones: ["scratch"] }, SWEEP.overrides[preset]);
    default:
      throw new ConfigError(`plan: unknown plan "${String(plan)}"; use one of ${PLANS.join(", ")}`);
  }
}
