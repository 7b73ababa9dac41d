// Plain-text account of a run, for the CLI's last lines: per backbone and arm, the last epoch's
// test BCE and ROC-AUC (mean and 95% CI over trials), the paired difference, and what did not run.
import type { BackendInfo } from "../engine/backend";
import { PRESETS, PresetName, ConfigError } from "../config";
import { entropyNats } from "../maths";
import { summarize, pairedDifference, MeanCi } from "./stats";
import type { ExperimentResult } from "./grid";
import { unitLabel } from "./progress";

/** BIAS_INIT_PRESET if set; else the reference's `full` on a CUDA backend and `quick` elsewhere. */
export function defaultPreset(backend: BackendInfo, env: string | undefined = process.env.BIAS_INIT_PRESET): PresetName {
  if (env !== undefined && env.trim() !== "") {
    const p = env.trim() as PresetName;
    if (!PRESETS.includes(p)) throw new ConfigError(`BIAS_INIT_PRESET="${env}" is not one of ${PRESETS.join(", ")}`);
    return p;
  }
  return backend.kind === "cuda" ? "full" : "quick";
}

export function formatMeanCi(m: MeanCi, digits = 4): string {
  const ci = m.ci_low === null || m.ci_high === null ? "no CI (1 trial)" : `95% CI ${m.ci_low.toFixed(digits)}..${m.ci_high.toFixed(digits)}`;
  return `${m.mean.toFixed(digits)} (${ci}, n=${m.n})`;
}

export function describeResult(result: ExperimentResult): string {
  const lines: string[] = [];
  const dataset = result.dataset === "synthetic" ? "SYNTHETIC stand-in data (not CIFAR-10)" : "CIFAR-10";
  lines.push(`summary (${dataset}; results ${result.dir}):`);
  const lastEpoch = result.config.epochs;
  for (const backbone of result.config.backbones) {
    const records = result.records.filter((r) => r.backbone === backbone);
    if (records.length === 0) continue;
    for (const epoch of [0, lastEpoch]) {
      for (const metric of ["loss", "roc_auc"] as const) {
        for (const row of summarize(records, metric).filter((r) => r.epoch === epoch)) {
          lines.push(`  ${backbone.padEnd(8)} ${row.arm.padEnd(13)} epoch ${String(epoch).padStart(2)} ${metric === "loss" ? "test BCE" : "ROC-AUC "} ${formatMeanCi(row)}`);
        }
      }
    }
    for (const metric of ["loss", "roc_auc"] as const) {
      const diff = pairedDifference(records, metric).find((r) => r.epoch === lastEpoch);
      if (diff) lines.push(`  ${backbone.padEnd(8)} positive_rate - vanilla, epoch ${lastEpoch} ${metric === "loss" ? "test BCE" : "ROC-AUC"}: ${formatMeanCi(diff)}`);
    }
  }
  const positiveRate = result.positiveRate;
  if (positiveRate !== null) lines.push(`  entropy H(p) of the measured positive rate p=${positiveRate.toFixed(4)}: ${entropyNats(positiveRate).toFixed(4)} nats (log 2 = 0.6931)`);
  // Units that share a reason (typically: weights unavailable) are listed once under it.
  for (const [label, units] of [["not run", result.unavailable], ["FAILED", result.failed]] as const) {
    const byMessage = new Map<string, string[]>();
    for (const u of units) byMessage.set(u.message, [...(byMessage.get(u.message) ?? []), unitLabel(u.unit)]);
    for (const [message, names] of byMessage) lines.push(`  ${label}: ${names.join(", ")}: ${message}`);
  }
  return lines.join("\n");
}
