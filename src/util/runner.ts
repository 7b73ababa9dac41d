// How this process runs, so that the processes it starts run the same way: under tsx (the
// TypeScript sources as they are: tests, notebooks' helpers, `node --import tsx src/cli.ts`) or
// compiled by tools/run-ts.sh into one JavaScript file (make run, make bench), which tells the
// bundle where the repository is, since its own folder (dist/) is not src/.
import * as path from "path";
import { pathToFileURL } from "url";

/** Set by tools/run-ts.sh (esbuild --define) in compiled files; undeclared under tsx. */
declare const BIAS_INIT_SOURCE_ROOT: string | undefined;

/** Whether this process runs a file compiled by tools/run-ts.sh. */
export const COMPILED = typeof BIAS_INIT_SOURCE_ROOT === "string";

/** The repository root (under tsx this file lives in <root>/src/util). */
export const PROJECT_ROOT: string = typeof BIAS_INIT_SOURCE_ROOT === "string" ? BIAS_INIT_SOURCE_ROOT : path.resolve(__dirname, "..", "..");

/** The command and arguments that run `entry` (a .ts path relative to the root) the way this process runs. */
export function entryCommand(entry: string, compiled = COMPILED): { command: string; args: string[] } {
  if (compiled) return { command: "bash", args: [path.join(PROJECT_ROOT, "tools", "run-ts.sh"), entry] };
  return { command: process.execPath, args: ["--import", pathToFileURL(require.resolve("tsx")).href, path.join(PROJECT_ROOT, entry)] };
}
