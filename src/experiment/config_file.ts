// A run's configs as a JSON file, for processes started from code rather than from flags: a
// notebook's workers get `src/cli.ts --worker --config FILE`. One ExperimentConfig or a list; each is
// rebuilt through makeConfig, so a file is validated as flags are.
import * as fs from "fs";
import * as path from "path";
import { ConfigError, ConfigOverrides, ExperimentConfig, makeConfig, mergeOverrides } from "../config";
import { writeFileAtomic } from "../util/atomic_write";

/** Writes `configs` to `file` (its folder is created), atomically. */
export function writeConfigFile(file: string, configs: ExperimentConfig[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, JSON.stringify(configs, null, 2) + "\n");
}

/** The configs in `file`, each with `overrides` on top, validated. */
export function readConfigFile(file: string, overrides: ConfigOverrides = {}): ExperimentConfig[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new ConfigError(`--config: ${file}: ${(e as Error).message.split("\n")[0]}; give a JSON file holding an experiment config or a list of them`);
  }
  const list = Array.isArray(parsed) ? parsed : [parsed];
  if (list.length === 0) throw new ConfigError(`--config: ${file} holds an empty list; give at least one config`);
  return list.map((c, i) => {
    if (c === null || typeof c !== "object" || typeof (c as ExperimentConfig).preset !== "string") {
      throw new ConfigError(`--config: ${file}: entry ${i} is not an experiment config (no "preset"); write configs as the notebook facade does`);
    }
    const { preset, ...fields } = c as ExperimentConfig;
    return makeConfig(preset, mergeOverrides(fields as ConfigOverrides, overrides));
  });
}
