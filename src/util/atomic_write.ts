// A write that never leaves a half-written file: the data goes to `<file>.tmp-<pid>.h<host>` (the
// name from leftoverTag in util/leftovers.ts, which removes such files once their writer is gone),
// then is renamed over `file`.
import * as fs from "fs";
import { leftoverTag } from "./leftovers";

/** Writes `data` to `file` atomically; `hooks` run after the temporary file is written and after the rename. */
export function writeFileAtomic(file: string, data: string | Uint8Array, hooks: { written?(): void; renamed?(): void } = {}): void {
  const tmp = `${file}.tmp-${leftoverTag()}`;
  fs.writeFileSync(tmp, data);
  hooks.written?.();
  fs.renameSync(tmp, file);
  hooks.renamed?.();
}
