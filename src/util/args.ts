// Command-line flags for the project's entry points (CLI, make data, make weights), on Node's own
// util.parseArgs: strict; an error is one line ending with the usage line.
import { parseArgs } from "util";
import { UserError } from "../errors";

export type FlagSpec = Record<string, { type: "string" | "boolean" }>;
export type FlagValues = Record<string, string | boolean | undefined>;

export class UsageError extends UserError {
  override name = "UsageError";
}

/** Parses `argv` against `spec`; unknown flags, missing values and positionals throw a one-line UsageError. */
export function parseFlags(argv: string[], spec: FlagSpec, usage: string): FlagValues {
  try {
    return parseArgs({ args: argv, options: spec, strict: true, allowPositionals: false }).values as FlagValues;
  } catch (e) {
    const message = (e as Error).message.split("\n")[0].replace(/\.$/, "");
    throw new UsageError(`${message}; ${usage.split("\n")[0]}`);
  }
}

/** A string flag's value, or `fallback` when it was not given. */
export function stringFlag(values: FlagValues, name: string, fallback: string): string;
export function stringFlag(values: FlagValues, name: string, fallback: null): string | null;
export function stringFlag(values: FlagValues, name: string, fallback: string | null): string | null {
  const v = values[name];
  return typeof v === "string" ? v : fallback;
}
