// The results key: which config fields (and which code version) decide a unit's numbers, hashed
// into the name of the store's folder. Runs that agree on these share a store; any other change
// of a knob or of NUMERICS_VERSION starts a new one.
import { createHash } from "crypto";
import { ExperimentConfig, NUMERICS_VERSION } from "../config";

/**
 * The fields that only select which units run (and the preset's name): everything else in the
 * config changes a unit's numbers and so is part of the results key. A deny-list, so that a knob
 * added later can never silently share a store with runs made without it.
 */
export const GRID_SELECTION_FIELDS = ["preset", "backbones", "arms", "trials"] as const;

/**
 * The part of the config that determines a unit's numbers, with the code's NUMERICS_VERSION. The
 * ImageNet and scratch notebooks of one preset share one store, and adding trials later extends it
 * instead of starting over. Where the data lives (data.dir) is left out too: which images a run
 * uses is fixed by the resolved data.source (CIFAR-10, md5-checked, or the deterministic synthetic
 * set) and the limits, so stores made on machines with other data folders share a key (and merge).
 */
export function resultKeyFields(c: ExperimentConfig): object {
  const { dir: _where, ...data } = c.data;
  const fields: Record<string, unknown> = { ...c, data, numericsVersion: NUMERICS_VERSION };
  for (const f of GRID_SELECTION_FIELDS) delete fields[f];
  // No target rate is the data as stores written before the knob hold: left out, so they keep their hash.
  if (c.data.targetPositiveRate === null) fields.data = Object.fromEntries(Object.entries(data).filter(([k]) => k !== "targetPositiveRate"));
  return fields;
}

/** Canonical JSON (sorted keys) so that equal configs always hash equally. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** 12 hex digits of SHA-256 over the result-determining fields: the results folder's name. */
export function configHash(c: ExperimentConfig): string {
  return createHash("sha256").update(canonicalJson(resultKeyFields(c))).digest("hex").slice(0, 12);
}
