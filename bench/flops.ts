// Multiply-accumulates of one image through EfficientNet + Linear(1000, 1), counted from the
// architecture (convolutions, SE's two matrix products, classifier, head; BatchNorm, activations
// and pooling are left out, as torchvision's "GFLOPS" figure leaves them out: B1 at 240x240
// counts 0.687 G there and 0.69 G here), and the machine's fp32 peak from its cores, clock and
// vector width, for bench/compare.ts's "fraction of peak" line.
import * as os from "os";
import { efficientNetArchitecture, type ConvBnAct } from "../src/model/architecture";
import { convOutputSize } from "../src/model/ops/padding";
import { cpuInfo } from "../src/util/cpu_info";
import type { ModelName } from "../src/config";

/** Forward MACs of one image of side `size`. */
export function forwardMacsPerImage(model: ModelName, size: number): number {
  const arch = efficientNetArchitecture(model);
  let side = size;
  let macs = 0;
  const conv = (u: ConvBnAct): void => {
    side = convOutputSize(side, u.kernel, u.stride);
    const perOutput = u.kind === "depthwise" ? u.kernel * u.kernel : u.kernel * u.kernel * u.inChannels;
    macs += side * side * u.outChannels * perOutput;
  };
  conv(arch.stem);
  for (const b of arch.stages.flat()) {
    if (b.expand) conv(b.expand);
    conv(b.depthwise);
    macs += 2 * b.se.channels * b.se.squeezeChannels;
    conv(b.project);
  }
  conv(arch.top);
  // The classifier, then the binary head Linear(1000, 1).
  macs += arch.classifier.inFeatures * arch.classifier.outFeatures + arch.classifier.outFeatures;
  return macs;
}

/** A training step costs the forward plus two products of the same size per layer (input and weight gradients): 3x. */
export const TRAIN_TO_FORWARD = 3;

export interface CpuPeak {
  model: string;
  cores: number;
  ghz: number;
  /** fp32 FLOP per cycle per core at the widest vector unit the flags show: lanes x 2 (an FMA is 2 FLOP) x 2 FMA pipes. */
  flopPerCycle: number;
  /** The same with AVX2 (8 lanes), the width both engines' generic kernels are built for. */
  avx2FlopPerCycle: number;
  gflops: number;
  avx2Gflops: number;
  /** How the numbers were read, for the printout. */
  source: string;
}

/** FMA pipes per core assumed (Intel since Haswell, AMD since Zen 2, and Xeon Gold/Platinum for AVX-512 have 2). */
const FMA_PIPES = 2;

/** Peak fp32 GFLOP/s of the CPUs this process may use: cores x clock x FLOP per cycle. */
export function cpuPeak(): CpuPeak {
  const { model, mhz, flags } = cpuInfo();
  const cores = os.cpus().length;
  const ghz = Number.isFinite(mhz) ? mhz / 1000 : os.cpus()[0].speed / 1000;
  const fma = flags.has("fma");
  const lanes = flags.has("avx512f") ? 16 : flags.has("avx2") || flags.has("avx") ? 8 : 4;
  const flopPerCycle = lanes * (fma ? 2 * FMA_PIPES : 2);
  const avx2FlopPerCycle = 8 * (fma ? 2 * FMA_PIPES : 2);
  return {
    model: model ?? os.cpus()[0].model,
    cores,
    ghz,
    flopPerCycle,
    avx2FlopPerCycle,
    gflops: cores * ghz * flopPerCycle,
    avx2Gflops: cores * ghz * avx2FlopPerCycle,
    source: `${cores} cores x ${ghz.toFixed(2)} GHz (/proc/cpuinfo "cpu MHz") x FLOP/cycle = lanes x 2 x ${FMA_PIPES} FMA pipes ` +
      `(flags: ${["avx2", "fma", "avx512f"].filter((f) => flags.has(f)).join(", ") || "no avx2/fma/avx512f"})`,
  };
}
