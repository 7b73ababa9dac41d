// `make data`: fetch and unpack CIFAR-10 (or generate the synthetic stand-in) and say where it is.
//   npx tsx src/data/main.ts [--dir data] [--local PATH] [--synthetic]
import * as fs from "fs";
import * as path from "path";
import {
  BATCH_DIR_NAME, CIFAR10_TARBALL, CIFAR10_URL, RECORD_BYTES, TARBALL_ENV, TEST_BATCH_FILE, TRAIN_BATCH_FILES, ensureCifar10,
} from "./cifar10";
import { progressPrinter } from "./download";
import { ensureSynthetic } from "./synthetic";
import { parseFlags, stringFlag } from "../args";

interface Args {
  dir: string;
  local: string | null;
  synthetic: boolean;
}

const USAGE = `usage: npx tsx src/data/main.ts [--dir DIR] [--local PATH] [--synthetic]
  --dir DIR     data folder (default: data)
  --local PATH  use this copy of ${CIFAR10_TARBALL} instead of downloading (also: ${TARBALL_ENV}=PATH)
  --synthetic   generate the synthetic stand-in in DIR/synthetic instead`;

export function parseArgs(argv: string[]): Args {
  const v = parseFlags(argv, { dir: { type: "string" }, local: { type: "string" }, synthetic: { type: "boolean" } }, USAGE);
  return { dir: stringFlag(v, "dir", "data"), local: stringFlag(v, "local", null), synthetic: v.synthetic === true };
}

function describe(batchDir: string): string {
  const records = (name: string): number => fs.statSync(path.join(batchDir, name)).size / RECORD_BYTES;
  const train = TRAIN_BATCH_FILES.reduce((sum, name) => sum + records(name), 0);
  return `${batchDir} (${train} train + ${records(TEST_BATCH_FILE)} test images)`;
}

export async function main(argv: string[]): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  if (args.synthetic) {
    console.log(`SYNTHETIC stand-in ready: ${describe(ensureSynthetic(args.dir))}`);
    return 0;
  }
  try {
    const dir = await ensureCifar10({ dataDir: args.dir, localCopy: args.local, onProgress: progressPrinter(CIFAR10_TARBALL) });
    console.log(`CIFAR-10 ready: ${describe(dir)}`);
    return 0;
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    console.error(`To use a copy obtained elsewhere (${CIFAR10_URL}), run:\n` +
      `  npx tsx src/data/main.ts --local /path/to/${CIFAR10_TARBALL}\nor\n  ${TARBALL_ENV}=/path/to/${CIFAR10_TARBALL} make data\n` +
      `It lands in ${path.join(args.dir, BATCH_DIR_NAME)}. Without it, experiments with data.source "auto" use the synthetic stand-in.`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
