// Conclusions written from the numbers: every sentence the summary notebook states about the
// experiment is generated here from the stored records, so it can never disagree with the tables.
// The rule for a claim: a paired difference (positive rate - vanilla, matched on trial) whose 95%
// CI excludes zero. With one trial there is no interval and no claim. A claim about several epochs
// at once is Holm-corrected over the epochs after training began. Diverged and incomplete units
// are left out (stats/selection.ts), and the text says so.
import { ARM_LABEL, BACKBONE_LABEL } from "../config";
import type { Backbone, DatasetKind } from "../config";
import type { EpochRecord } from "./records";
import type { ExperimentResult } from "./grid";
import { formatInterval, MeanCi } from "./stats/student_t";
import { pairedDifference, summarize } from "./stats/grouping";
import { holmLower } from "./stats/multiple_comparisons";
import { exclusionNote, selectUnits, UnitId } from "./stats/selection";
import { asSentence, missingWeightsReason } from "./run_summary";
import { entropyNats } from "../maths";
import type { LogitSpreadRow } from "./stats/tables";


/** What a paired difference's interval says. */
export type Verdict = "lower" | "higher" | "unresolved" | "single-trial";

export function verdict(d: MeanCi): Verdict {
  if (d.ci_low === null || d.ci_high === null) return "single-trial";
  if (d.ci_high < 0) return "lower";
  if (d.ci_low > 0) return "higher";
  return "unresolved";
}

/** How a paired difference is written: signed, with its interval over paired trials. */
export const PAIRED = { signed: true, what: "paired trials" };

/** One half of the grid (or the convergence run) to conclude about. */
export interface ConclusionPart {
  /** e.g. "ImageNet weights, 5 epochs". */
  label: string;
  backbone: Backbone;
  records: readonly EpochRecord[];
  /** The measured positive rate of this part's training data, when it differs from the context's. */
  positiveRate?: number | null;
  /** Set when the half could not run (e.g. ImageNet weights unavailable): reported instead of numbers. */
  unavailable?: string | null;
  /** Units whose training diverged (status "failed"): left out, and counted. */
  failed?: readonly UnitId[];
  /** Trials per arm the config asks for, to count missing ones. */
  trials?: number | null;
}

export interface ConclusionContext {
  dataset: DatasetKind;
  /** Measured training positive rate p. */
  positiveRate: number;
  /** The configured positive class, resolved to its CIFAR-10 name (config.data.positiveClass). */
  positiveClass: string;
  /** Preset name and a short description of what was trained (model, input size, images). */
  preset: string;
  setting: string;
}

function epochsOf(records: readonly EpochRecord[]): number[] {
  return [...new Set(records.map((r) => r.epoch))].sort((a, b) => a - b);
}

/** Sentences (markdown bullets) about one part, from its records only. */
export function partFindings(part: ConclusionPart, positiveRate: number): string[] {
  if (part.unavailable) return [`**${part.label}: not run.** ${asSentence(part.unavailable)}`];
  const selection = selectUnits({ records: part.records.filter((r) => r.backbone === part.backbone), failed: part.failed, trials: part.trials });
  const records = selection.records;
  const excluded = exclusionNote(selection.tallies, { backbone: part.backbone });
  if (records.length === 0) return [`**${part.label}: no results in the store yet** (run its notebook first).${excluded === "" ? "" : ` ${excluded}`}`];
  const out: string[] = excluded === "" ? [] : [`**${part.label}: units left out of every number below.** ${excluded}`];
  const hp = entropyNats(positiveRate);
  const epochs = epochsOf(records);
  const last = epochs[epochs.length - 1];

  const start = summarize(records, "loss").filter((r) => r.epoch === 0);
  const startOf = (arm: string) => start.find((r) => r.arm === arm);
  const v0 = startOf("vanilla");
  const p0 = startOf("positive_rate");
  if (v0 && p0) {
    out.push(`**${part.label}, before training (epoch 0):** test BCE ${v0.mean.toFixed(4)} with the vanilla bias ` +
      `(log 2 = ${Math.LN2.toFixed(4)}) and ${p0.mean.toFixed(4)} with the positive-rate bias (H(p) = ${hp.toFixed(4)} for p = ${positiveRate.toFixed(4)}).`);
  }

  const bce = pairedDifference(records, "loss");
  const auc = pairedDifference(records, "roc_auc");
  const bceLast = bce.find((r) => r.epoch === last);
  const aucLast = auc.find((r) => r.epoch === last);
  if (!bceLast || !aucLast) {
    out.push(`**${part.label}:** no trial has both arms at epoch ${last}, so there is no paired comparison.`);
    return out;
  }
  const bceWord: Record<Verdict, string> = {
    lower: "lower test BCE with the positive-rate bias",
    higher: "higher test BCE with the positive-rate bias",
    unresolved: "no test-BCE difference the trials can resolve (the CI includes 0)",
    "single-trial": "a single trial: no interval, so no conclusion about test BCE",
  };
  const aucWord: Record<Verdict, string> = {
    lower: "lower ROC-AUC with the positive-rate bias",
    higher: "higher ROC-AUC with the positive-rate bias",
    unresolved: "no ROC-AUC difference the trials can resolve (the CI includes 0)",
    "single-trial": "a single trial: no interval, so no conclusion about ROC-AUC",
  };
  out.push(`**${part.label}, after epoch ${last}:** ${bceWord[verdict(bceLast)]}: positive rate - vanilla = ${formatInterval(bceLast, PAIRED)}; ` +
    `${aucWord[verdict(aucLast)]}: ${formatInterval(aucLast, PAIRED)}.`);

  const trained = bce.filter((r) => r.epoch > 0);
  if (trained.length > 0 && trained.every((r) => verdict(r) !== "single-trial")) {
    // Holm over the epochs after training began: an epoch counts when its paired t test is rejected
    // after the correction and the difference is negative.
    const resolved = holmLower(trained).map((r) => r.epoch);
    const holm = `(paired t tests, Holm-corrected over the ${trained.length} epoch${trained.length === 1 ? "" : "s"} after training began, family-wise 5%)`;
    if (resolved.length === 0) out.push(`**${part.label}:** at no epoch after training began is the positive-rate arm's test BCE resolvably lower ${holm}.`);
    else if (resolved.length === trained.length) out.push(`**${part.label}:** its test BCE is resolvably lower at every epoch (1-${last}) ${holm}.`);
    else out.push(`**${part.label}:** its test BCE is resolvably lower at epoch${resolved.length === 1 ? "" : "s"} ${resolved.join(", ")} of 1-${last} ${holm}.`);
  }
  return out;
}

/** The summary notebook's conclusions, as markdown, naming the dataset (loudly when synthetic). */
export function writeConclusions(parts: readonly ConclusionPart[], ctx: ConclusionContext): string {
  const lines: string[] = [];
  if (ctx.dataset === "synthetic") {
    lines.push("**These numbers come from the SYNTHETIC stand-in data, not CIFAR-10.** They show the pipeline works end to end; " +
      `they say nothing about the question on real images (positive class: ${ctx.positiveClass}). Run \`make data\`, then the notebooks again.`);
  } else {
    lines.push(`Data: CIFAR-10, ${ctx.positiveClass} vs not ${ctx.positiveClass}, measured training positive rate p = ${ctx.positiveRate.toFixed(4)}.`);
  }
  lines.push(`Preset \`${ctx.preset}\`: ${ctx.setting}.`);
  lines.push("");
  for (const part of parts) for (const finding of partFindings(part, part.positiveRate ?? ctx.positiveRate)) lines.push(`- ${finding}`);
  lines.push("");
  lines.push("A claim is made only where the 95% CI of the paired difference (same trial seed, same data order, " +
    "only the head's bias differs; Student t on the natural scale) excludes zero; a claim about several epochs at once " +
    "is Holm-corrected over those epochs. Units that diverged or hold fewer epochs than the others are left out and counted.");
  return lines.join("\n");
}

/** The results of the plans a summary covers (any may be missing). */
export type PlanResults = Partial<Record<"imagenet" | "scratch" | "convergence", ExperimentResult>>;

const PART_LABEL = { imagenet: "ImageNet weights", scratch: "From scratch", convergence: "From scratch, convergence run" } as const;

/** One part per plan and backbone it ran; a backbone that could not run carries the reason instead. */
export function conclusionParts(results: PlanResults): ConclusionPart[] {
  return (Object.keys(PART_LABEL) as Array<keyof typeof PART_LABEL>).flatMap((plan) => {
    const result = results[plan];
    if (!result) return [];
    return result.config.backbones.map((backbone) => ({
      label: `${PART_LABEL[plan]} (${result.config.epochs} epochs)`, backbone, records: result.records, positiveRate: result.positiveRate,
      failed: result.failed.map((f) => f.unit), trials: result.config.trials,
      unavailable: result.records.some((r) => r.backbone === backbone) ? null
        : result.unavailable.find((u) => u.unit.backbone === backbone)?.message ?? (backbone === "imagenet" ? missingWeightsReason(result.config) : null),
    }));
  });
}

/**
 * The walkthrough's sentences about the logits before any step, per arm: the bias sets the mean
 * logit, not its spread. The first step's loss is split into what the first batch's positive rate
 * explains (a constant prediction at the batch's mean logit) and what the spread of its logits adds.
 */
export function logitSpreadFindings(rows: readonly LogitSpreadRow[]): string[] {
  const f = (x: number | null, digits = 3): string => (x === null ? "n/a" : x.toFixed(digits));
  return rows.map((r) => {
    const where = `**${BACKBONE_LABEL[r.backbone]}, ${ARM_LABEL[r.arm].toLowerCase()} arm (bias ${f(r.bias)}):**`;
    const test = `in eval mode the test logits have mean ${f(r.test_logit_mean)} and SD ${f(r.test_logit_sd)}, test BCE ${f(r.test_bce_epoch0, 4)}.`;
    if (r.first_step_loss === null || r.first_batch_bce_at_mean_logit === null) return `${where} ${test}`;
    const composition = r.first_batch_bce_at_mean_logit - r.test_bce_epoch0;
    const spread = r.first_step_loss - r.first_batch_bce_at_mean_logit;
    return `${where} ${test} The first step sees the first training batch in train mode (BatchNorm on the batch's statistics): its logits have mean ` +
      `${f(r.first_batch_logit_mean)} and SD ${f(r.first_batch_logit_sd)}, and ${f((r.first_batch_positive_rate ?? 0) * 100, 1)}% of the batch is positive. ` +
      `Its loss, ${f(r.first_step_loss, 4)}, is ${f(r.first_step_loss - r.test_bce_epoch0, 4)} above the test BCE: ${f(composition, 4)} from the batch's positive rate ` +
      `(a constant prediction at the mean logit would cost ${f(r.first_batch_bce_at_mean_logit, 4)} on it) and ${f(spread, 4)} from the spread of its logits. ` +
      "The bias sets where the logits are centred, not how far they spread.";
  });
}
