// Multiply-accumulates of one image through EfficientNet + Linear(1000, 1), counted from the
// architecture (convolutions, SE's two matrix products, classifier, head; BatchNorm, activations
// and pooling are left out, as torchvision's "GFLOPS" figure leaves them out: B1 at 240x240
// counts 0.687 G there and 0.69 G here), and the machine's fp32 peak from its cores, clock and
// vector width, and as measured (fma_peak.c), for bench/compare.ts's "fraction of peak" line.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
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

/** The fp32 peak as measured: every core running FMA chains together (fma_peak.c), the best of three runs. */
export interface MeasuredPeak {
  /** At the widest vectors the flags show (AVX-512 or AVX2), and with AVX2. */
  gflops: number;
  avx2Gflops: number;
  /** The clock those imply at the assumed FMA pipes, against /proc/cpuinfo's. */
  source: string;
}

/**
 * Compiles and runs bench/fma_peak.c with the system's C compiler in a temporary folder (removed
 * after). { error } with the reason where the CPU has no AVX2 + FMA or the probe cannot be built or run.
 */
export function measuredPeak(nominal: CpuPeak): MeasuredPeak | { error: string } {
  const { flags } = cpuInfo();
  if (!flags.has("avx2") || !flags.has("fma")) return { error: "no AVX2 + FMA in the CPU's flags" };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fma-peak-"));
  try {
    const exe = path.join(dir, "fma_peak");
    execFileSync("cc", ["-O2", "-pthread", path.join(__dirname, "fma_peak.c"), "-o", exe], { stdio: "pipe" });
    const run = (isa: string): number => {
      const out = execFileSync(exe, [isa, String(nominal.cores)], { encoding: "utf8" }).trim();
      if (!(Number(out) > 0)) throw new Error(`printed "${out}" for ${isa}`);
      return Number(out);
    };
    const avx2Gflops = run("avx2");
    const gflops = flags.has("avx512f") ? run("avx512") : avx2Gflops;
    const ghz = avx2Gflops / (nominal.cores * nominal.avx2FlopPerCycle);
    return {
      gflops,
      avx2Gflops,
      source: `measured by bench/fma_peak.c, ${nominal.cores} threads of FMA chains: the cores ran at ~${ghz.toFixed(2)} GHz ` +
        `at ${nominal.avx2FlopPerCycle} AVX2 FLOP/cycle, /proc/cpuinfo says ${nominal.ghz.toFixed(2)}`,
    };
  } catch (e) {
    return { error: `bench/fma_peak.c did not build or run (${(e as Error).message.split("\n")[0]})` };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
