// Which units the statistics include. A unit that diverged (status "failed") or holds fewer epochs
// than the other units of its condition (interrupted, still running) would drag its trials' means
// toward whatever epochs it reached: it is left out of every aggregate, and the tables and figures
// that leave it out say how many they left out and why ("n = 8 of 10 trials; 2 diverged (excluded)").
import { ARM_LABEL } from "../../config";
import type { Arm } from "../../config";
import { Condition, conditionKey, conditionOf, EpochRecord, StepRecord } from "../records";
import type { ExperimentResult } from "../grid";
import { compareKeys } from "./grouping";

/** One unit: its condition, arm and trial (store.ts's UnitKey is one). */
export interface UnitId extends Condition {
  arm: Arm;
  trial: number;
}

/** Per condition and arm: how many trials were expected, kept, and left out for each reason. */
export interface UnitTally extends Condition {
  arm: Arm;
  /** Trials the config asks for (null when not known). */
  expected: number | null;
  included: number;
  /** Status "failed": training diverged. */
  diverged: number;
  /** Fewer epochs than the condition's other units. */
  incomplete: number;
  /** Expected but with no record and no status (not run yet, or could not run). */
  missing: number;
}

export interface SelectionInput {
  records: readonly EpochRecord[];
  steps?: readonly StepRecord[];
  /** Units whose status is "failed" (ExperimentResult.failed's units). */
  failed?: readonly UnitId[];
  /** Trials per arm the config asks for, to count the missing ones. */
  trials?: number | null;
}

export interface Selection {
  records: EpochRecord[];
  steps: StepRecord[];
  tallies: UnitTally[];
}

const unitKey = (u: UnitId): string => [...conditionKey(u), u.arm, u.trial].join("\u0000");
const conditionId = (c: Condition): string => conditionKey(c).join("\u0000");

/** The records and steps of the units to include, and per (condition, arm) what was left out. */
export function selectUnits(input: SelectionInput): Selection {
  const epochsOf = new Map<string, { unit: UnitId; epochs: number }>();
  for (const r of input.records) {
    const key = unitKey(r);
    const entry = epochsOf.get(key) ?? { unit: { ...conditionOf(r), arm: r.arm, trial: r.trial }, epochs: 0 };
    entry.epochs++;
    epochsOf.set(key, entry);
  }
  const failed = new Set((input.failed ?? []).map(unitKey));
  // Units known only from their steps or their failed status hold no epoch record.
  for (const u of [...(input.steps ?? []), ...(input.failed ?? [])]) {
    if (!epochsOf.has(unitKey(u))) epochsOf.set(unitKey(u), { unit: { ...conditionOf(u), arm: u.arm, trial: u.trial }, epochs: 0 });
  }
  // The most epochs any unit of the condition that did not fail holds.
  const most = new Map<string, number>();
  for (const [key, { unit, epochs }] of epochsOf) {
    if (!failed.has(key)) most.set(conditionId(unit), Math.max(most.get(conditionId(unit)) ?? 0, epochs));
  }
  const tallies = new Map<string, UnitTally>();
  const included = new Set<string>();
  for (const [key, { unit, epochs }] of epochsOf) {
    const id = `${conditionId(unit)}\u0000${unit.arm}`;
    const tally = tallies.get(id) ?? { ...conditionOf(unit), arm: unit.arm, expected: input.trials ?? null, included: 0, diverged: 0, incomplete: 0, missing: 0 };
    if (failed.has(key)) tally.diverged++;
    else if (epochs < (most.get(conditionId(unit)) ?? 0)) tally.incomplete++;
    else {
      tally.included++;
      included.add(key);
    }
    tallies.set(id, tally);
  }
  for (const t of tallies.values()) if (t.expected !== null) t.missing = Math.max(0, t.expected - t.included - t.diverged - t.incomplete);
  const sorted = [...tallies.values()].sort((a, b) => compareKeys([...conditionKey(a), a.arm], [...conditionKey(b), b.arm]));
  return {
    records: input.records.filter((r) => included.has(unitKey(r))),
    steps: (input.steps ?? []).filter((s) => included.has(unitKey(s))),
    tallies: sorted,
  };
}

/** True when a tally left a unit out. */
export function leftOut(t: UnitTally): boolean {
  return t.diverged + t.incomplete + t.missing > 0;
}

/**
 * What a table or figure of one condition left out, as one sentence, or "" when it left out
 * nothing: "Vanilla: n = 8 of 10 trials; 2 diverged (excluded). Positive rate: n = 10 of 10 trials."
 */
export function exclusionNote(tallies: readonly UnitTally[], condition: Condition): string {
  const mine = tallies.filter((t) => conditionId(t) === conditionId(condition));
  if (!mine.some(leftOut)) return "";
  return mine.map((t) => {
    const reasons = [[t.diverged, "diverged"], [t.incomplete, "with fewer epochs than the others"], [t.missing, "not run"]] as const;
    const why = reasons.filter(([n]) => n > 0).map(([n, what]) => `${n} ${what}`);
    const of = t.expected !== null ? ` of ${t.expected}` : ` of ${t.included + t.diverged + t.incomplete}`;
    return `${ARM_LABEL[t.arm]}: n = ${t.included}${of} trials${why.length > 0 ? `; ${why.join(", ")} (excluded)` : ""}.`;
  }).join(" ");
}

/** `selectUnits` over everything a result holds, with its failed units (in a sweep's store, at its rate) and configured trials. */
export function selectResult(result: Pick<ExperimentResult, "records" | "steps" | "failed" | "config">): Selection {
  const rate = result.config.data.targetPositiveRate;
  const failed = result.failed.map((f): UnitId => (rate === null ? f.unit : { ...f.unit, target_positive_rate: rate }));
  return selectUnits({ records: result.records, steps: result.steps, failed, trials: result.config.trials });
}
