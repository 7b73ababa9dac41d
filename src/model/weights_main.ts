// `make weights`: fetch torchvision's ImageNet weights (SHA-256 checked) into weights/ and check
// that the file is exactly a state_dict of our model.
//   npx tsx src/model/weights_main.ts [--model b1] [--dir weights] [--local PATH]
import type { ModelName } from "../config";
import { progressPrinter } from "../util/download";
import { parseFlags, stringFlag, UsageError } from "../util/args";
import { reportError, runMain } from "../errors";
import { DEFAULT_WEIGHTS_DIR, ensureImagenetWeights, IMAGENET_WEIGHTS, verifyCheckpointFits } from "./pretrained";

interface Args {
  model: ModelName;
  dir: string;
  local: string | null;
}

const MODELS = Object.keys(IMAGENET_WEIGHTS) as ModelName[];

const USAGE = `usage: npx tsx src/model/weights_main.ts [--model ${MODELS.join("|")}] [--dir DIR] [--local PATH]
  --model NAME  which torchvision weights (default: b1, ${IMAGENET_WEIGHTS.b1?.name})
  --dir DIR     weights folder (default: ${DEFAULT_WEIGHTS_DIR})
  --local PATH  verify and use this copy instead of downloading (also: ${IMAGENET_WEIGHTS.b1?.envVar}=PATH)`;

export function parseArgs(argv: string[]): Args {
  const v = parseFlags(argv, { model: { type: "string" }, dir: { type: "string" }, local: { type: "string" } }, USAGE);
  const model = stringFlag(v, "model", "b1");
  if (!(MODELS as string[]).includes(model)) throw new UsageError(`--model: "${model}" has no torchvision ImageNet weights here; use one of ${MODELS.join(", ")}`);
  return { model: model as ModelName, dir: stringFlag(v, "dir", DEFAULT_WEIGHTS_DIR), local: stringFlag(v, "local", null) };
}

/** Returns the exit code; a UserError (bad flag, failed download, wrong hash, misfit) is one `error:` line and 2. */
export async function main(argv: string[]): Promise<number> {
  try {
    const args = parseArgs(argv);
    const weights = IMAGENET_WEIGHTS[args.model];
    const file = await ensureImagenetWeights({
      model: args.model, dir: args.dir, localCopy: args.local, onProgress: progressPrinter(weights?.file ?? args.model),
    });
    const state = verifyCheckpointFits(file, args.model);
    console.log(`${weights?.name} ready: ${file} (sha256 ${weights?.sha256Prefix}..., ${state.size} tensors, fits efficientnet ${args.model})`);
    return 0;
  } catch (e) {
    return reportError(e);
  }
}

if (require.main === module) runMain(() => main(process.argv.slice(2)));
