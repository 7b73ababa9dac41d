// `make data`: fetch and unpack CIFAR-10 (or generate the synthetic stand-in) and say where it is.
//   npx tsx src/data/main.ts [--dir data] [--local PATH] [--synthetic]
import * as fs from "fs";
import * as path from "path";
import {
  CIFAR10_TARBALL, RECORD_BYTES, TARBALL_ENV, TEST_BATCH_FILE, TRAIN_BATCH_FILES, ensureCifar10,
} from "./cifar10";
import { progressPrinter } from "../util/download";
import { ensureSynthetic } from "./synthetic";
import { parseFlags, stringFlag } from "../util/args";
import { reportError, runMain } from "../errors";
import { defaultDataDir } from "../config";

interface Args {
  dir: string;
  local: string | null;
  synthetic: boolean;
}

const USAGE = `usage: npx tsx src/data/main.ts [--dir DIR] [--local PATH] [--synthetic]
  --dir DIR     data folder (default: env BIAS_INIT_DATA, else data)
  --local PATH  use this copy of ${CIFAR10_TARBALL} instead of downloading (also: ${TARBALL_ENV}=PATH)
  --synthetic   generate the synthetic stand-in in DIR/synthetic instead`;

export function parseArgs(argv: string[]): Args {
  const v = parseFlags(argv, { dir: { type: "string" }, local: { type: "string" }, synthetic: { type: "boolean" } }, USAGE);
  return { dir: stringFlag(v, "dir", defaultDataDir()), local: stringFlag(v, "local", null), synthetic: v.synthetic === true };
}

function describe(batchDir: string): string {
  const records = (name: string): number => fs.statSync(path.join(batchDir, name)).size / RECORD_BYTES;
  const train = TRAIN_BATCH_FILES.reduce((sum, name) => sum + records(name), 0);
  return `${batchDir} (${train} train + ${records(TEST_BATCH_FILE)} test images)`;
}

/** Returns the exit code; a UserError (bad flag, failed download, wrong checksum) is one `error:` line and 2. */
export async function main(argv: string[]): Promise<number> {
  try {
    const args = parseArgs(argv);
    if (args.synthetic) {
      console.log(`SYNTHETIC stand-in ready: ${describe(ensureSynthetic(args.dir))}`);
      return 0;
    }
    const dir = await ensureCifar10({ dataDir: args.dir, localCopy: args.local, onProgress: progressPrinter(CIFAR10_TARBALL) });
    console.log(`CIFAR-10 ready: ${describe(dir)}`);
    return 0;
  } catch (e) {
    return reportError(e);
  }
}

if (require.main === module) runMain(() => main(process.argv.slice(2)));
