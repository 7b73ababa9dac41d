// Where the repository is, and how to start one of its entry points the way `make run` does:
// compiled by tools/run-ts.sh into one JavaScript file (dist/<entry>.cjs) that plain node runs,
// with ~120 MB less memory per process than under tsx (docs/performance.md, items 23-24). The
// workers a run starts and the engine's side of the benchmarks are started so, whether their
// parent runs compiled (the CLI) or under tsx (a notebook's kernel, the tests).
import * as path from "path";

/** Set by tools/run-ts.sh (esbuild --define) in compiled files; undeclared under tsx. */
declare const BIAS_INIT_SOURCE_ROOT: string | undefined;

/** The repository root: under tsx this file lives in <root>/src/util; a compiled file is told. */
export const PROJECT_ROOT: string = typeof BIAS_INIT_SOURCE_ROOT === "string" ? BIAS_INIT_SOURCE_ROOT : path.resolve(__dirname, "..", "..");

/** The command and arguments that run `entry` (a .ts path relative to the root) compiled. */
export function compiledCommand(entry: string): { command: string; args: string[] } {
  return { command: "bash", args: [path.join(PROJECT_ROOT, "tools", "run-ts.sh"), entry] };
}
