// torchvision's ImageNet weights for our EfficientNet: where the file comes from (verified like
// torchvision's own check_hash: the first 8 hex digits of its SHA-256 are in the file name), and
// how a PyTorch state_dict maps onto the model's variables (same keys, TF.js layouts; see the top
// of architecture.ts). A checkpoint that does not fit is rejected as a whole, with every problem
// listed, before a single variable is written.
import * as path from "path";
import { EnvironmentName, ModelName, readEnvironment } from "../config";
import { ChecksumError, downloadFile, FetchLike, hashFile, ProgressCallback } from "../util/download";
import { readCheckpoint, StateDict, TensorData } from "./torch_pth";
import { efficientNetArchitecture, variablePlan } from "./architecture";
import { EfficientNet } from "./efficientnet";
import type { BinaryClassifier } from "./head";
import type { VariableSpec } from "./ops/variables";
import { UserError } from "../errors";

export interface PretrainedWeights {
  /** torchvision's enum name, e.g. EfficientNet_B1_Weights.IMAGENET1K_V2. */
  name: string;
  url: string;
  file: string;
  /** First 8 hex digits of the file's SHA-256 (the suffix of its name), as torchvision checks it. */
  sha256Prefix: string;
  /** Environment variable that may point at a local copy of the file. */
  envVar: EnvironmentName;
}

export const IMAGENET_WEIGHTS: Readonly<Partial<Record<ModelName, PretrainedWeights>>> = {
  b1: {
    name: "EfficientNet_B1_Weights.IMAGENET1K_V2",
    url: "https://download.pytorch.org/models/efficientnet_b1-c27df63c.pth",
    file: "efficientnet_b1-c27df63c.pth",
    sha256Prefix: "c27df63c",
    envVar: "EFFICIENTNET_B1_WEIGHTS",
  },
  b0: {
    name: "EfficientNet_B0_Weights.IMAGENET1K_V1",
    url: "https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth",
    file: "efficientnet_b0_rwightman-7f5810bc.pth",
    sha256Prefix: "7f5810bc",
    envVar: "EFFICIENTNET_B0_WEIGHTS",
  },
};

export const DEFAULT_WEIGHTS_DIR = "weights";

/** The weights are not on disk and could not be fetched; the message says how to provide them. */
export class WeightsUnavailableError extends UserError {
  override name = "WeightsUnavailableError";
}

/** A state_dict does not fit the model; `problems` lists every mismatch, one line each. */
export class StateDictMismatchError extends UserError {
  override name = "StateDictMismatchError";
  constructor(readonly source: string, readonly target: string, readonly problems: string[]) {
    super(`${source}: does not fit ${target} (${problems.length} problem(s), first: ${problems[0]}); ` +
      `nothing was loaded, use torchvision's ${target} weights (make weights)`);
  }
}

export interface EnsureWeightsOptions {
  model?: ModelName;
  dir?: string;
  /** A copy of the file to verify and use instead of the network (default: the env var). */
  localCopy?: string | null;
  /** Override the download URL (tests). */
  url?: string;
  onProgress?: ProgressCallback;
  fetchImpl?: FetchLike;
}

function weightsFor(model: ModelName): PretrainedWeights {
  const w = IMAGENET_WEIGHTS[model];
  if (w === undefined) {
    const known = Object.keys(IMAGENET_WEIGHTS).join(", ");
    throw new WeightsUnavailableError(`no ImageNet weights exist for efficientnet "${model}" (torchvision has them for ${known}); use the scratch backbone`);
  }
  return w;
}

/** How to get the file onto this machine, for error messages. */
function howToProvide(w: PretrainedWeights, dest: string): string {
  return `Run \`make weights\` on a machine that can reach ${new URL(w.url).host}, or download ${w.url} ` +
    `elsewhere and put it at ${dest}, or set ${w.envVar}=/path/to/${w.file}.`;
}

/**
 * Path of the verified weights file for `model` (default b1) under `dir` (default "weights"):
 * already there, copied from a local copy (option or env var), or downloaded. A wrong checksum
 * throws ChecksumError (naming the file); a file that cannot be had throws WeightsUnavailableError.
 */
export async function ensureImagenetWeights(opts: EnsureWeightsOptions = {}): Promise<string> {
  const w = weightsFor(opts.model ?? "b1");
  const dest = path.join(opts.dir ?? DEFAULT_WEIGHTS_DIR, w.file);
  const localCopy = opts.localCopy ?? readEnvironment()[w.envVar];
  try {
    const result = await downloadFile({
      url: opts.url ?? w.url,
      dest,
      hash: { algorithm: "sha256", expected: w.sha256Prefix },
      localCopy,
      onProgress: opts.onProgress,
      fetchImpl: opts.fetchImpl,
    });
    return result.path;
  } catch (e) {
    if (e instanceof ChecksumError) throw e;
    const stale = await describeStaleFile(dest, w);
    throw new WeightsUnavailableError(
      `${w.name} weights are not available: ${(e as Error).message}${stale}\n${howToProvide(w, dest)}`);
  }
}

async function describeStaleFile(dest: string, w: PretrainedWeights): Promise<string> {
  try {
    const actual = await hashFile(dest, "sha256");
    return ` (${dest} exists but its sha256 ${actual.slice(0, 8)}... is not ${w.sha256Prefix}...)`;
  } catch {
    return "";
  }
}

/**
 * Converts one PyTorch tensor to the variable's TF.js layout: 4-D conv weights OIHW -> HWIO
 * (for a depthwise [C, 1, k, k] this permutation has the memory order of [k, k, C, 1]; for a 1x1
 * [O, I, 1, 1] that of the 2-D [I, O] the model keeps), 2-D linear [out, in] -> [in, out], 1-D as is.
 */
export function toVariableLayout(t: TensorData, spec: VariableSpec): Float32Array {
  const src = t.data as Float32Array | Float64Array;
  const ts = spec.torchShape;
  const pointwise = ts.length === 4 && ts[2] === 1 && ts[3] === 1 && spec.shape.length === 2;
  if (ts.length === 4 && (spec.shape.length === 4 || pointwise)) {
    const [o, i, kh, kw] = ts;
    const out = new Float32Array(src.length);
    let at = 0;
    for (let oo = 0; oo < o; oo++) {
      for (let ii = 0; ii < i; ii++) {
        for (let h = 0; h < kh; h++) {
          for (let w = 0; w < kw; w++) out[((h * kw + w) * i + ii) * o + oo] = src[at++];
        }
      }
    }
    return out;
  }
  if (ts.length === 2 && spec.shape.length === 2) {
    const [o, i] = ts;
    const out = new Float32Array(src.length);
    for (let oo = 0; oo < o; oo++) {
      for (let ii = 0; ii < i; ii++) out[ii * o + oo] = src[oo * i + ii];
    }
    return out;
  }
  if (ts.length === 1 && spec.shape.length === 1) return Float32Array.from(src);
  throw new Error(`src/model/pretrained.ts: no layout conversion from PyTorch [${ts}] to [${spec.shape}] for "${spec.key}"`);
}

const FLOAT_DTYPES = new Set(["float32", "float16", "bfloat16", "float64"]);
const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((n, i) => n === b[i]);

/**
 * Every way `state` fails to be exactly the state_dict of the model with this plan: missing keys,
 * wrong shapes or dtypes, and keys left over. `num_batches_tracked` of the model's own BatchNorms
 * is ignored (we keep no such counter). Empty when it fits.
 */
export function stateDictProblems(plan: readonly VariableSpec[], state: StateDict): string[] {
  const problems: string[] = [];
  const planKeys = new Set(plan.map((p) => p.key));
  for (const spec of plan) {
    const t = state.get(spec.key);
    if (t === undefined) {
      problems.push(`missing ${spec.key} (expected [${spec.torchShape.join(", ")}])`);
    } else if (!sameShape(t.shape, spec.torchShape)) {
      problems.push(`shape of ${spec.key} is [${t.shape.join(", ")}], expected [${spec.torchShape.join(", ")}]`);
    } else if (!FLOAT_DTYPES.has(t.dtype)) {
      problems.push(`dtype of ${spec.key} is ${t.dtype}, expected a floating-point type`);
    }
  }
  for (const key of state.keys()) {
    if (planKeys.has(key)) continue;
    const ownCounter = key.endsWith(".num_batches_tracked") &&
      planKeys.has(`${key.slice(0, -".num_batches_tracked".length)}.running_mean`);
    if (!ownCounter) problems.push(`unexpected ${key} [${(state.get(key) as TensorData).shape.join(", ")}]`);
  }
  return problems;
}

/** The model's backbone (a BinaryClassifier's pretrained part is its EfficientNet). */
function backboneOf(model: EfficientNet | BinaryClassifier): EfficientNet {
  return model instanceof EfficientNet ? model : model.backbone;
}

/**
 * Writes a torchvision state_dict into the EfficientNet (of a BinaryClassifier: its backbone; the
 * head keeps its weights). All or nothing: any mismatch throws StateDictMismatchError listing all.
 */
export function loadStateDict(model: EfficientNet | BinaryClassifier, state: StateDict, source: string): void {
  const backbone = backboneOf(model);
  const plan = backbone.variablePlan();
  const problems = stateDictProblems(plan, state);
  if (problems.length > 0) throw new StateDictMismatchError(source, `efficientnet ${backbone.spec.name}`, problems);
  backbone.setWeights(new Map(plan.map((spec) => [spec.key, toVariableLayout(state.get(spec.key) as TensorData, spec)])));
}

/** Reads the file and throws unless it is exactly a state_dict for efficientnet `model`. */
export function verifyCheckpointFits(file: string, model: ModelName): StateDict {
  const state = readCheckpoint(file);
  const problems = stateDictProblems(variablePlan(efficientNetArchitecture(model)), state);
  if (problems.length > 0) throw new StateDictMismatchError(`checkpoint ${file}`, `efficientnet ${model}`, problems);
  return state;
}

/**
 * Gets torchvision's ImageNet weights for the model's architecture (see ensureImagenetWeights)
 * and loads them into its backbone. `name`, when given, must be the backbone's architecture.
 */
export async function loadImagenetWeights(model: EfficientNet | BinaryClassifier, name?: ModelName,
  opts: Omit<EnsureWeightsOptions, "model"> = {}): Promise<void> {
  const arch = backboneOf(model).spec.name;
  if (name !== undefined && name !== arch) {
    throw new Error(`src/model/pretrained.ts: asked for ${name} weights for an efficientnet ${arch} model`);
  }
  const file = await ensureImagenetWeights({ ...opts, model: arch });
  loadStateDict(model, readCheckpoint(file), `checkpoint ${file}`);
}
