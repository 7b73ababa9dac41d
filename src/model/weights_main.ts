// `make weights`: fetch torchvision's ImageNet weights (SHA-256 checked) into weights/ and check
// that the file is exactly a state_dict of our model.
//   npx tsx src/model/weights_main.ts [--model b1] [--dir weights] [--local PATH]
import type { ModelName } from "../config";
import { progressPrinter } from "../data/download";
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
  const args: Args = { model: "b1", dir: DEFAULT_WEIGHTS_DIR, local: null };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new Error(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    if (flag === "--model") {
      const m = value();
      if (!(MODELS as string[]).includes(m)) throw new Error(`--model must be one of ${MODELS.join(", ")}, got "${m}"\n${USAGE}`);
      args.model = m as ModelName;
    } else if (flag === "--dir") args.dir = value();
    else if (flag === "--local") args.local = value();
    else throw new Error(`unknown argument "${flag}"\n${USAGE}`);
  }
  return args;
}

export async function main(argv: string[]): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  const weights = IMAGENET_WEIGHTS[args.model];
  try {
    const file = await ensureImagenetWeights({
      model: args.model, dir: args.dir, localCopy: args.local, onProgress: progressPrinter(weights?.file ?? args.model),
    });
    const state = verifyCheckpointFits(file, args.model);
    console.log(`${weights?.name} ready: ${file} (sha256 ${weights?.sha256Prefix}..., ${state.size} tensors, fits efficientnet ${args.model})`);
    return 0;
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
