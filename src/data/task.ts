// The binary task: one CIFAR-10 class against the other nine. The positive rate is always measured
// from the labels, because it is what the positive-rate bias init log(p/(1-p)) is computed from.
import { ConfigError } from "../config";
import { CLASS_NAMES, NUM_CLASSES } from "./cifar10";

export interface PositiveClass {
  index: number;
  name: string;
}

/** A class by name ("frog", case-insensitive), by index (6), or by an index written as text ("6"); ConfigError otherwise. */
export function resolvePositiveClass(c: string | number): PositiveClass {
  if (typeof c === "string" && !/^\s*\d+\s*$/.test(c)) {
    const name = c.trim().toLowerCase();
    const index = (CLASS_NAMES as readonly string[]).indexOf(name);
    if (index < 0) {
      throw new ConfigError(`data.positiveClass: unknown CIFAR-10 class "${c}"; use one of ${CLASS_NAMES.join(", ")} (or an index 0..${NUM_CLASSES - 1})`);
    }
    return { index, name: CLASS_NAMES[index] };
  }
  const index = Number(c);
  if (!Number.isInteger(index) || index < 0 || index >= NUM_CLASSES) {
    throw new ConfigError(`data.positiveClass: index ${String(c).trim()} is outside 0..${NUM_CLASSES - 1}; use one of ${CLASS_NAMES.map((n, i) => `${i} ${n}`).join(", ")}`);
  }
  return { index, name: CLASS_NAMES[index] };
}

/** 1 where the 0..9 label is the positive class, 0 elsewhere. */
export function toBinaryLabels(labels: Uint8Array, positiveIndex: number): Float32Array {
  return Float32Array.from(labels, (label) => (label === positiveIndex ? 1 : 0));
}

/**
 * Indices of the first `positives` images of the positive class and the first `others` of the
 * rest, in file order (the walkthrough's sample grid).
 */
export function sampleIndices(labels: ArrayLike<number>, positiveIndex: number, positives: number, others: number): number[] {
  const picked: number[] = [];
  let p = 0;
  let o = 0;
  for (let i = 0; i < labels.length && (p < positives || o < others); i++) {
    const isPositive = labels[i] === positiveIndex;
    if (isPositive ? p >= positives : o >= others) continue;
    picked.push(i);
    if (isPositive) p++;
    else o++;
  }
  return picked;
}

/** Fraction of 0/1 labels that are 1. */
export function positiveRate(binaryLabels: ArrayLike<number>): number {
  if (binaryLabels.length === 0) throw new Error("positiveRate: no labels");
  let positives = 0;
  for (let i = 0; i < binaryLabels.length; i++) positives += binaryLabels[i] === 1 ? 1 : 0;
  return positives / binaryLabels.length;
}
