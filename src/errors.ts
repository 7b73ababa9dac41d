// Errors a user can cause or fix (a bad flag, a missing file, a wrong checksum, a checkpoint that
// does not fit) are UserErrors: entry points print them as one `error: <message>` line and exit 2.
// Anything else is a bug in this project and keeps its stack.
//
// Message convention: `<what it concerns>: <what is wrong>; <what to do>`, in lower case after the
// prefix, where "what it concerns" is the file path, the config field (`config.trials`), the flag
// (`--lr`) or the environment variable (`BIAS_INIT_BACKEND`). One line where possible; a list of
// problems (e.g. every state_dict mismatch) may follow on indented lines.

export class UserError extends Error {
  override name = "UserError";
}

/** Exit code of every entry point for a UserError (as for bad command-line usage). */
export const USER_ERROR_EXIT = 2;

/**
 * Runs an entry point's `main` and exits with its code; a UserError becomes one `error:` line and
 * exit 2, any other error its stack and exit 1.
 */
export function runMain(main: () => Promise<number>): void {
  main().then((code) => process.exit(code), (e: unknown) => process.exit(reportError(e)));
}

/** Prints an error the way every entry point does and returns the exit code (2 for a UserError, else 1). */
export function reportError(e: unknown): number {
  if (e instanceof UserError) {
    console.error(`error: ${e.message}`);
    return USER_ERROR_EXIT;
  }
  console.error(`error: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  return 1;
}
