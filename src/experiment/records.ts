// The records the training loop emits and the results store keeps: the contract between the
// experiment (writer) and the statistics and figures (readers). Plain JSON-able objects.
import type { Arm, Backbone, DatasetKind } from "../config";

/** One evaluation of one model on the test set; epoch 0 is before any training step. */
export interface EpochRecord {
  backbone: Backbone;
  arm: Arm;
  trial: number;
  /** 0 = before any step, then 1..epochs after each epoch. */
  epoch: number;
  /** Test binary cross-entropy: sklearn-style log loss on sigmoid probabilities. */
  loss: number;
  roc_auc: number;
  /** The output logit's bias (its sigmoid is the model's prior positive rate). */
  output_bias_value: number;
  /** Mean training loss over the epoch; null at epoch 0. */
  train_loss: number | null;
  wall_s: number;
  images_per_s: number | null;
  seed: number;
  dataset: DatasetKind;
  backend: string;
}

/** The training loss of one optimizer step. */
export interface StepRecord {
  backbone: Backbone;
  arm: Arm;
  trial: number;
  epoch: number;
  /** 1-based within the epoch. */
  step: number;
  loss: number;
}

/** Epoch-record metrics that can be summarized across trials. */
export type EpochMetric = "loss" | "roc_auc" | "output_bias_value" | "train_loss";
