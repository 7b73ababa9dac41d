// Fakes for the engine tests, so that GPU diagnostics can be checked on machines without a GPU:
// an `nvidia-smi` script on PATH, tiny ELF libraries built with gcc (real `ldd`/`readelf` read
// them), and a fake GPU engine package that registers a "tensorflow" backend (the pure-JS kernels
// underneath) reporting a GPU or not. Everything is written under a folder the caller removes.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

export const ROOT = path.resolve(__dirname, "../..");

/** Runs a command; status, stdout and stderr (never throws). */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, encoding: "utf8", input: opts.input, maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

export const hasGcc = run("gcc", ["--version"]).status === 0;

export interface FakeGpu {
  name: string;
  driver: string;
  /** null: a driver too old to know the compute_cap query field. */
  computeCapability: string | null;
  memoryMiB: number;
}

/** A folder holding an `nvidia-smi` that answers -L and the --query-gpu forms for `gpu`. */
export function fakeNvidiaSmi(dir: string, gpu: FakeGpu): string {
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin, { recursive: true });
  const withCc = gpu.computeCapability === null
    ? `echo 'Field "compute_cap" is not a valid field to query.'; exit 2`
    : `echo "0, ${gpu.name}, ${gpu.driver}, ${gpu.computeCapability}, ${gpu.memoryMiB}"`;
  fs.writeFileSync(path.join(bin, "nvidia-smi"), `#!/usr/bin/env bash
case "$*" in
  -L) echo "GPU 0: ${gpu.name} (UUID: GPU-00000000-fake)" ;;
  *--query-gpu=*compute_cap*) ${withCc} ;;
  *--query-gpu=*) echo "0, ${gpu.name}, ${gpu.driver}, ${gpu.memoryMiB}" ;;
  *--query-compute-apps=*) ;;
  *) echo "NVIDIA-SMI (fake) ${gpu.driver}" ;;
esac
`, { mode: 0o755 });
  return bin;
}

/** Compiles a shared library `file` with DT_NEEDED `needs` (found in `linkDir`) and DT_RUNPATH `runpath`. */
export function compileLib(file: string, opts: { needs?: string[]; linkDir?: string; runpath?: string[] } = {}): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const src = `${file}.c`;
  fs.writeFileSync(src, "int fake_symbol(void) { return 0; }\n");
  const args = ["-shared", "-fPIC", "-o", file, src, `-Wl,-soname,${path.basename(file)}`];
  if (opts.runpath?.length) args.push(`-Wl,-rpath,${opts.runpath.join(":")}`, "-Wl,--enable-new-dtags");
  if (opts.needs?.length) {
    args.push(`-L${opts.linkDir}`, "-Wl,--no-as-needed");
    // -l:<file> links a library by its exact file name (libtensorflow.so.2 has no .so symlink here).
    for (const n of opts.needs) args.push(`-l:${n}`);
  }
  const r = run("gcc", args);
  fs.rmSync(src);
  if (r.status !== 0) throw new Error(`gcc failed: ${r.stderr}`);
}

export const CUDA_WHEEL_LIBS: Record<string, string[]> = {
  cuda_runtime: ["libcudart.so.12"], cublas: ["libcublas.so.12", "libcublasLt.so.12"], cufft: ["libcufft.so.11"],
  cusolver: ["libcusolver.so.11"], cusparse: ["libcusparse.so.12"], cudnn: ["libcudnn.so.9"], nvjitlink: ["libnvJitLink.so.12"],
};

export interface FakeGpuBuild {
  /** The binding's libtensorflow.so.2 is there (else ldd reports it "not found"). */
  tfLibResolves: boolean;
  /** Unpack fake CUDA wheel libraries under deps/nvidia/<pkg>/lib (covered by the TF libraries' run paths). */
  cudaWheels: boolean;
  /** The fake engine reports a GPU device. */
  seesGpu: boolean;
  /** Write a cuda-env.sh (its LD_LIBRARY_PATH naming the wheel folders). */
  cudaEnv: boolean;
}

/** <nativeDir>/tfjs-node-gpu as build.sh --gpu leaves it, with fakes for the binding, TensorFlow and CUDA. */
export function fakeGpuBuild(nativeDir: string, o: FakeGpuBuild): string {
  const pkg = path.join(nativeDir, "tfjs-node-gpu");
  const lib = path.join(pkg, "deps", "lib");
  const stubs = path.join(nativeDir, "link-stubs");
  compileLib(path.join(stubs, "libtensorflow.so.2"));
  const binding = path.join(pkg, "lib", "napi-v8", "tfjs_binding.node");
  compileLib(binding, { needs: ["libtensorflow.so.2"], linkDir: stubs, runpath: ["$ORIGIN/../../deps/lib"] });
  fs.rmSync(stubs, { recursive: true });
  if (o.tfLibResolves) compileLib(path.join(lib, "libtensorflow.so.2"));
  const wheelRunpath = Object.keys(CUDA_WHEEL_LIBS).map((p) => `$ORIGIN/../nvidia/${p}/lib`);
  compileLib(path.join(lib, "libtensorflow_framework.so.2"), { runpath: wheelRunpath });
  compileLib(path.join(lib, "libtensorflow_cc.so.2"), { runpath: ["$ORIGIN"] });
  if (o.cudaWheels) {
    for (const [p, names] of Object.entries(CUDA_WHEEL_LIBS)) {
      for (const n of names) compileLib(path.join(pkg, "deps", "nvidia", p, "lib", n));
    }
  }
  if (o.cudaEnv) {
    const r = run("bash", [path.join(ROOT, "tools/native/write_cuda_env.sh"), pkg]);
    if (r.status !== 0) throw new Error(r.stderr);
  }
  const tfjs = path.join(ROOT, "node_modules", "@tensorflow", "tfjs");
  const cpu = path.join(ROOT, "node_modules", "@tensorflow", "tfjs-backend-cpu");
  fs.writeFileSync(path.join(pkg, "package.json"), JSON.stringify({ name: "@tensorflow/tfjs-node-gpu", version: "4.22.0", main: "index.js" }));
  fs.writeFileSync(path.join(pkg, "index.js"), `// Fake GPU engine for tests: the pure-JS kernels under the name "tensorflow".
const tf = require(${JSON.stringify(tfjs)});
const { MathBackendCPU } = require(${JSON.stringify(cpu)});
tf.registerBackend("tensorflow", () => {
  const b = new MathBackendCPU();
  b.isUsingGpuDevice = ${o.seesGpu};
  b.getTFVersion = () => "2.21.0 (fake)";
  return b;
}, 3);
for (const k of tf.getKernelsForBackend("cpu")) tf.registerKernel({ ...k, backendName: "tensorflow" });
module.exports = tf;
`);
  fs.writeFileSync(path.join(nativeDir, "READY-gpu"), JSON.stringify({ variant: "gpu", package: "@tensorflow/tfjs-node-gpu", bindingPath: binding, fake: true }));
  return pkg;
}

/** A folder with a fake libcuda.so.1 (what the NVIDIA driver installs), for LD_LIBRARY_PATH. */
export function fakeDriverLibs(dir: string): string {
  const d = path.join(dir, "driver-lib");
  compileLib(path.join(d, "libcuda.so.1"));
  return d;
}
