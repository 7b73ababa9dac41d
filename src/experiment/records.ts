// The records the training loop emits and the results store keeps: the contract between the
// experiment (writer) and the statistics and figures (readers). Plain JSON-able objects.
import type { Arm, Backbone, DatasetKind } from "../config";
import type { EpochMetrics } from "../train/loop";

/** One evaluation of one unit, as the store keeps it: the loop's metrics plus who and where. */
export interface EpochRecord extends Omit<EpochMetrics, "num_tensors"> {
  backbone: Backbone;
  arm: Arm;
  trial: number;
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
