// What a finished (or partly finished) run amounts to, as plain text: the CLI's closing lines, and
// the lines the notebooks and the CLI show for units that could not run or failed.
import { entropyNats } from "../maths";
import { formatInterval } from "./stats/student_t";
import { pairedDifference, summarize } from "./stats/grouping";
import { exclusionNote, selectResult } from "./stats/selection";
import { intervalText } from "./stats/scales";
import { ARMS, ExperimentConfig, PRESETS, PRESET_CONFIGS } from "../config";
import { IMAGENET_WEIGHTS } from "../model/pretrained";
import type { ExperimentResult } from "./grid";
import { PLAN_NOTEBOOK, PlanName } from "./plans";
import { UnitKey, unitLabel } from "./store";
import { conditionOf } from "./records";

/** Units holding every epoch record of their config (epoch 0 included). */
export function completeUnits(result: ExperimentResult): number {
  return result.units.filter((u) => u.epochs === result.config.epochs + 1).length;
}

/**
 * Why a config's ImageNet units can never run, whatever the store holds: torchvision has no
 * ImageNet weights for its model (the smoke preset's tiny model); null when they can.
 */
export function missingWeightsReason(config: ExperimentConfig): string | null {
  if (IMAGENET_WEIGHTS[config.model] !== undefined) return null;
  const able = PRESETS.filter((p) => IMAGENET_WEIGHTS[PRESET_CONFIGS[p].model] !== undefined).map((p) => `\`${p}\``);
  return `no ImageNet weights exist for model "${config.model}" of preset \`${config.preset}\`` +
    ` (${able.length > 0 ? `presets ${able.join(" and ")} have them` : "no preset has them"})`;
}

/**
 * How complete a plan is in the store and, when units are missing, which notebook trains them; or,
 * for ImageNet units no notebook can train with this preset, why.
 */
export function planStatusText(plan: PlanName, result: ExperimentResult): string {
  const { config } = result;
  const complete = completeUnits(result);
  const missing = result.units.filter((u) => u.epochs !== config.epochs + 1 && !result.unavailable.some((x) => sameUnit(x.unit, u.unit)));
  const reason = missingWeightsReason(config);
  const blocked = reason === null ? 0 : missing.filter((u) => u.unit.backbone === "imagenet").length;
  const trainable = missing.length - blocked;
  return `**${plan}** (\`${result.dir}\`): ${complete} of ${result.units.length} unit(s) complete` +
    (result.unavailable.length > 0 ? `, ${result.unavailable.length} not runnable` : "") +
    (trainable > 0 ? `; run \`${PLAN_NOTEBOOK[plan]}\` to train the other ${trainable}` : "") +
    (blocked > 0 ? `; ${blocked} cannot run: ${reason}` : "") + ".";
}

function sameUnit(a: UnitKey, b: UnitKey): boolean {
  return a.backbone === b.backbone && a.arm === b.arm && a.trial === b.trial;
}

/**
 * A message shown after a full stop ("**ImageNet weights: not run.** No ImageNet weights ..."):
 * errors start lower-case by the project's convention, so a leading plain word is capitalized.
 * A leading name is not (`weights/efficientnet_b1.pth not found`, `tslab: ...`): it is spelled as it is.
 */
export function asSentence(message: string): string {
  return /^[a-z][a-z'-]*(\s|,|$)/.test(message) ? message[0].toUpperCase() + message.slice(1) : message;
}

/**
 * Units that did not run or failed, grouped so that units sharing a reason (typically: ImageNet
 * weights unavailable) are listed once under it. One line per reason.
 */
export function unitsByReason(result: ExperimentResult): string[] {
  const lines: string[] = [];
  for (const [label, units] of [["not run", result.unavailable], ["FAILED", result.failed]] as const) {
    const byMessage = new Map<string, string[]>();
    for (const u of units) byMessage.set(u.message, [...(byMessage.get(u.message) ?? []), unitLabel(u.unit)]);
    for (const [message, names] of byMessage) lines.push(`${label} (${names.length} unit${names.length === 1 ? "" : "s"}: ${names.join(", ")}): ${message}`);
  }
  return lines;
}

/** The CLI's closing summary: per backbone, arm and metric, epoch 0 and the last epoch, then the paired differences. */
export function runSummaryText(result: ExperimentResult): string {
  const lines: string[] = [];
  const dataset = result.dataset === "synthetic" ? "SYNTHETIC stand-in data (not CIFAR-10)" : "CIFAR-10";
  lines.push(`summary (${dataset}; results ${result.dir}):`);
  const lastEpoch = result.config.epochs;
  const metricName = { loss: "test BCE", roc_auc: "ROC-AUC " } as const;
  const selection = selectResult(result);
  for (const backbone of result.config.backbones) {
    const records = selection.records.filter((r) => r.backbone === backbone);
    // A sweep's store: its units' condition carries the target rate.
    const excluded = exclusionNote(selection.tallies, conditionOf({ backbone, target_positive_rate: result.config.data.targetPositiveRate ?? undefined }));
    if (excluded !== "") lines.push(`  ${backbone.padEnd(8)} left out of the numbers below: ${excluded}`);
    if (records.length === 0) continue;
    for (const epoch of [0, lastEpoch]) {
      for (const metric of ["loss", "roc_auc"] as const) {
        for (const row of summarize(records, metric).filter((r) => r.epoch === epoch)) {
          lines.push(`  ${backbone.padEnd(8)} ${row.arm.padEnd(13)} epoch ${String(epoch).padStart(2)} ${metricName[metric]} ${formatInterval(row)}`);
        }
      }
    }
    for (const arm of ARMS.filter((a) => a !== "vanilla" && records.some((r) => r.arm === a))) {
      for (const metric of ["loss", "roc_auc"] as const) {
        const diff = pairedDifference(records, metric, arm).find((r) => r.epoch === lastEpoch);
        if (diff) lines.push(`  ${backbone.padEnd(8)} ${arm} - vanilla, epoch ${lastEpoch} ${metricName[metric].trim()}: ${formatInterval(diff, { signed: true, what: "paired trials" })}`);
      }
    }
  }
  const positiveRate = result.positiveRate;
  lines.push(`  ${intervalText([["BCE", "log"], ["ROC-AUC", "logit"]])}; differences on the natural scale (ROC-AUC's cut to [-1, 1])`);
  if (positiveRate !== null) lines.push(`  entropy H(p) of the measured positive rate p=${positiveRate.toFixed(4)}: ${entropyNats(positiveRate).toFixed(4)} nats (log 2 = 0.6931)`);
  for (const line of unitsByReason(result)) lines.push(`  ${line}`);
  return lines.join("\n");
}
