// The records the training loop emits and the results store keeps: the contract between the
// experiment (writer) and the statistics and figures (readers). Plain JSON-able objects.
import type { Arm, Backbone, DatasetKind } from "../config";
import type { EpochMetrics } from "../train/loop";

/** Metrics added after the first stores were written: absent (read as null) in older records. */
export type LaterMetric = "ece" | "mean_prob" | "test_positive_rate" | "logit_mean" | "logit_sd" |
  "first_batch_logit_mean" | "first_batch_logit_sd" | "first_batch_positive_rate" | "loss_train_mode" | "roc_auc_train_mode";

/** One evaluation of one unit, as the store keeps it: the loop's metrics plus who and where. */
export interface EpochRecord extends Omit<EpochMetrics, "num_tensors" | LaterMetric>, Partial<Pick<EpochMetrics, LaterMetric>> {
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
export type EpochMetric = "loss" | "roc_auc" | "output_bias_value" | "train_loss" | LaterMetric;

/** A metric of a record, null where it was not measured (epoch 0's train loss, older records). */
export function metricOf(r: EpochRecord, metric: EpochMetric): number | null {
  return r[metric] ?? null;
}

/**
 * What units are compared within: everything that identifies a unit except its arm and trial.
 * Statistics group by it and rows carry its fields, so a new axis of the grid (e.g. the positive
 * rate of a sweep) is one field here and in `conditionOf`.
 */
export interface Condition {
  backbone: Backbone;
}

/** The condition of a record or unit. */
export function conditionOf(x: Condition): Condition {
  return { backbone: x.backbone };
}

/** The condition's values in a fixed order: a grouping and sort key. */
export function conditionKey(x: Condition): Array<string | number> {
  return [x.backbone];
}

/** The condition as people read it, e.g. "scratch". */
export function conditionLabel(x: Condition): string {
  return conditionKey(x).join(" ");
}
