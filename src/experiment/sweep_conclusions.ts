// The imbalance sweep's conclusions, written from the stored numbers (like conclusions.ts): per
// rate, the start (test BCE before any step against H(p) and log 2), the hockey stick measured,
// and the paired difference after the last epoch; across rates, a claim about the last epoch is
// Holm-corrected over the rates. Every prior arm is compared with vanilla (arm - vanilla, same
// trial). Synthetic data is said first and loudly.
import { ARM_LABEL } from "../config";
import type { Arm } from "../config";
import { resolvePositiveClass } from "../data/task";
import { entropyNats } from "../maths";
import { PAIRED, verdict } from "./conclusions";
import type { SweepResult } from "./sweep";
import { formatInterval } from "./stats/student_t";
import { holmLower, pairedTTestP } from "./stats/multiple_comparisons";
import { summarize } from "./stats/grouping";
import {
  measuredRate, rateExclusions, sweepArms, sweepCatchUpRows, SweepCatchUpRow, sweepDataRows, sweepDifferenceRows, SweepDifferenceRow, sweepSelection, sweepStartRows,
} from "./stats/sweep_stats";

const f4 = (x: number): string => x.toFixed(4);
const lower = (arm: Arm): string => ARM_LABEL[arm].toLowerCase();
/** "the positive-rate arm": each arm as an adjective. */
const ARM_NAME: Readonly<Record<Arm, string>> = { vanilla: "the vanilla arm", positive_rate: "the positive-rate arm", positive_rate_zero_head: "the zero-head positive-rate arm" };

function catchUpSentence(r: SweepCatchUpRow, batch: number): string {
  const against = ARM_NAME[r.arm];
  const excess = `excess loss over epoch 1 ${formatInterval(r.excess_loss, { what: "paired trials", digits: 3 })} nats x steps`;
  if (r.steps_to_catch_up === null) {
    return `the vanilla arm did not come within 5% of ${against} for good within epoch 1 in any of ${r.pairs} pair${r.pairs === 1 ? "" : "s"}; ${excess}`;
  }
  const s = r.steps_to_catch_up;
  return `the vanilla arm caught up with ${against} in ${r.caught_up} of ${r.pairs} pair${r.pairs === 1 ? "" : "s"}, after ${formatInterval(s, { what: "pairs", digits: 1 })} steps ` +
    `(about ${Math.round(s.mean * batch).toLocaleString("en-US")} images); ${excess}`;
}

function differenceSentence(loss: SweepDifferenceRow | undefined, auc: SweepDifferenceRow | undefined): string {
  if (!loss) return "no trial has both arms at the last epoch";
  const word = { lower: "resolvably lower", higher: "resolvably higher", unresolved: "no difference the trials resolve", "single-trial": "one trial, no interval" } as const;
  return `after epoch ${loss.epoch}, ${lower(loss.arm)} - vanilla: test BCE ${formatInterval(loss, PAIRED)} (${word[verdict(loss)]})` +
    (auc ? `, ROC-AUC ${formatInterval(auc, PAIRED)} (${word[verdict(auc)]})` : "");
}

/** Markdown bullets: the data, then per rate, then across rates, then how claims are made. */
export function sweepConclusions(sweep: SweepResult): string {
  const selection = sweepSelection(sweep);
  const positive = resolvePositiveClass(sweep.config.data.positiveClass).name;
  const lines: string[] = [sweep.dataset === "synthetic"
    ? "**These numbers come from the SYNTHETIC stand-in data, not CIFAR-10.** They show the sweep works end to end; " +
      `they say nothing about the question on real images (positive class: ${positive}). Run \`make data\`, then this notebook again.`
    : `Data: CIFAR-10, ${positive} vs not ${positive}, positives subsampled to each target rate (all negatives kept).`, ""];
  const start = sweepStartRows(sweep, selection);
  const catchUp = sweepCatchUpRows(sweep, selection);
  const loss = sweepDifferenceRows(sweep, "loss", selection);
  const auc = sweepDifferenceRows(sweep, "roc_auc", selection);
  const arms = sweepArms(selection.records).filter((a) => a !== "vanilla");
  for (const d of sweepDataRows(sweep)) {
    if (d.p === null || !selection.records.some((r) => r.target_positive_rate === d.target)) {
      lines.push(`- **Target rate ${d.target}: no results in the store yet** (run this notebook's training cell).`);
      continue;
    }
    const at = start.filter((r) => r.target === d.target);
    const v0 = at.find((r) => r.arm === "vanilla");
    const excluded = rateExclusions(sweep, selection, d.target);
    const parts = [`**p = ${f4(d.p)}** (target ${d.target}; train ${d.train_images} images, ${d.train_positives} positive; test ${d.test_images} images, ` +
      `${d.test_positives} positive)${excluded === "" ? "" : ` (${excluded})`}: before any step, test BCE ` +
      at.map((r) => `${f4(r.mean)} (${lower(r.arm)})`).join(", ") + `, against H(p) = ${f4(entropyNats(d.p))} and log 2 = ${f4(Math.LN2)}` +
      (v0 ? `; the vanilla arm starts ${f4(v0.mean - entropyNats(d.p))} nats above H(p)` : "") + "."];
    for (const arm of arms) {
      const c = catchUp.find((r) => r.target === d.target && r.arm === arm);
      if (c) parts.push(`Hockey stick: ${catchUpSentence(c, sweep.config.trainBatch)}.`);
      parts.push(`Paired difference ${differenceSentence(loss.find((r) => r.target === d.target && r.arm === arm), auc.find((r) => r.target === d.target && r.arm === arm))}.`);
    }
    lines.push(`- ${parts.join(" ")}`);
  }
  lines.push(...acrossRates(sweep, arms, start, catchUp, loss));
  lines.push(...zeroHeadSpread(sweep, selection.records));
  lines.push("", "Differences are each prior arm minus vanilla, matched on trial (same seed, data order and initial weights). " +
    "A claim at one rate needs the 95% CI of the paired difference (Student t, natural scale) to exclude zero; a claim across rates is Holm-corrected over them. " +
    "Units that diverged or hold fewer epochs than the others are left out and counted.");
  return lines.join("\n");
}

/** Sentences across rates: the start gap and the excess loss as p falls, and the last epoch's BCE difference, Holm over the rates. */
function acrossRates(sweep: SweepResult, arms: Arm[], start: ReturnType<typeof sweepStartRows>, catchUp: SweepCatchUpRow[], loss: SweepDifferenceRow[]): string[] {
  const out: string[] = [];
  const byP = <T extends { p: number }>(rows: T[]): T[] => [...rows].sort((a, b) => b.p - a.p);
  const vanillaStart = byP(start.filter((r) => r.arm === "vanilla"));
  if (vanillaStart.length > 1) {
    out.push(`- **Across rates, before any step:** the vanilla arm's test BCE exceeds H(p) by ${vanillaStart.map((r) => `${f4(r.mean - entropyNats(r.p))} at p = ${f4(r.p)}`).join(", ")} ` +
      `(log 2 - H(p): ${vanillaStart.map((r) => f4(Math.LN2 - entropyNats(r.p))).join(", ")}).`);
  }
  for (const arm of arms) {
    const rows = byP(catchUp.filter((r) => r.arm === arm));
    if (rows.length > 1) out.push(`- **Across rates, excess loss of vanilla over ${ARM_NAME[arm]}** (mean over pairs): ${rows.map((r) => `${r.excess_loss.mean.toFixed(3)} at p = ${f4(r.p)}`).join(", ")}.`);
    const last = byP(loss.filter((r) => r.arm === arm));
    const tested = last.filter((r) => pairedTTestP(r) !== null);
    if (tested.length > 1) {
      const lowerAt = holmLower(tested).map((r) => f4(r.p));
      const holm = `(paired t tests, Holm-corrected over the ${tested.length} rates, family-wise 5%)`;
      out.push(`- **Across rates, after the last epoch:** ${ARM_NAME[arm]}'s test BCE is resolvably lower than vanilla's at ` +
        `${lowerAt.length === 0 ? "no rate" : `p = ${lowerAt.join(", ")}`} ${holm}.`);
    }
  }
  if (out.length === 0 && sweep.points.length > 1) out.push("- **Across rates:** fewer than two rates hold results yet.");
  return out;
}

/** The third arm's point: with zero head weights every first-step logit is the bias (SD 0), against the positive-rate arm's spread. */
function zeroHeadSpread(sweep: SweepResult, records: ReturnType<typeof sweepSelection>["records"]): string[] {
  const start = records.filter((r) => r.epoch === 0 && r.first_batch_logit_sd != null);
  if (!start.some((r) => r.arm === "positive_rate_zero_head")) return [];
  const sd = (arm: Arm): number | null => summarize(start.filter((r) => r.arm === arm), "first_batch_logit_sd").reduce<number | null>((m, r) => Math.max(m ?? 0, r.mean), null);
  const zero = sd("positive_rate_zero_head");
  const prior = sd("positive_rate");
  const ps = sweep.points.map((p) => measuredRate(sweep, p.rate)).filter((p): p is number => p !== null);
  const zeroText = zero === null ? "n/a" : zero === 0 ? "exactly 0 (every logit is the bias)" : `at most ${zero.toExponential(1)}`;
  return [`- **${ARM_LABEL.positive_rate_zero_head} arm:** before any step, the first training batch's logits in train mode have SD ${zeroText}, ` +
    `against up to ${prior?.toFixed(3) ?? "n/a"} with the same bias and the drawn head weights, at p = ${ps.map(f4).join(", ")}.`];
}
