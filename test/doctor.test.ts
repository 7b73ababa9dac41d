// `make doctor` against fake machines: an `nvidia-smi` script on PATH, ELF libraries built with gcc
// (the real ldd and readelf read them) and a fake GPU engine package (test/helpers/fake_gpu.ts).
// Each case checks the diagnosis and the next command; then the doctor on this machine as it is.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { DoctorReport } from "../src/engine/doctor";
import { MIN_DRIVER_CUDA12 } from "../src/engine/doctor";
import { CUDA_SONAMES, systemLibraryDirs } from "../src/engine/native_builds";
import { versionAtLeast } from "../src/engine/machine_facts";
import { fakeDriverLibs, fakeGpuBuild, fakeNvidiaSmi, hasGcc, ROOT, run } from "./helpers/fake_gpu";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bias-doctor-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function doctor(env: NodeJS.ProcessEnv): DoctorReport {
  const r = run(process.execPath, ["--import", "tsx", path.join(ROOT, "src/engine/doctor_main.ts"), "--json"], { env });
  assert.equal(r.status, 0, `doctor exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as DoctorReport;
}

/** The environment of a machine with `gpuBin` first on PATH and the native engines in `nativeDir`. */
function fakeEnv(gpuBin: string, nativeDir: string, ldLibraryPath: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${gpuBin}:${process.env.PATH}`, BIAS_INIT_NATIVE_DIR: nativeDir, LD_LIBRARY_PATH: ldLibraryPath };
  delete env.BIAS_INIT_BACKEND;
  delete env.BIAS_INIT_CUDA_ENV;
  return env;
}

const texts = (r: DoctorReport, level: string): string[] => r.findings.filter((f) => f.level === level).map((f) => f.text);
/** CUDA libraries this machine itself has: a fake cannot hide those. */
const systemCuda = CUDA_SONAMES.filter((s) => systemLibraryDirs().some((d) => fs.existsSync(path.join(d, s))));
const T4 = { name: "Tesla T4", driver: "550.54.15", computeCapability: "7.5", memoryMiB: 15360 };

describe("make doctor with a fake GPU", { skip: hasGcc ? false : "needs gcc to build the fake libraries" }, () => {
  test("(a) GPU present, GPU build present, CUDA libraries missing: names them and says to rebuild", (t) => {
    if (systemCuda.length > 0) return t.skip(`this machine has CUDA libraries of its own (${systemCuda.join(", ")})`);
    const dir = path.join(tmp, "a");
    const native = path.join(dir, "native");
    fakeGpuBuild(native, { tfLibResolves: false, cudaWheels: false, seesGpu: false, cudaEnv: false });
    const r = doctor(fakeEnv(fakeNvidiaSmi(dir, T4), native, ""));
    assert.deepEqual(r.nvidia.gpus.map((g) => [g.name, g.driver, g.computeCapability, g.memoryMiB]), [["Tesla T4", "550.54.15", "7.5", 15360]]);
    const errors = texts(r, "error").join("\n");
    // ldd on the real ELF binding: its libtensorflow.so.2 is not in deps/lib.
    assert.match(errors, /do not resolve \(ldd\): libtensorflow\.so\.2 \(needed by tfjs_binding\.node\)/);
    for (const soname of CUDA_SONAMES) assert.ok(errors.includes(soname), `${soname} reported missing:\n${errors}`);
    assert.match(errors, /TensorFlow sees no GPU/);
    assert.equal(r.engine.active?.kind, "native-cpu");
    assert.match(r.engine.active?.source ?? "", /tfjs-node-gpu/);
    assert.equal(r.next, "make native-gpu ARGS=--force");
  });

  test("(a') the same with cuda-env.sh present but not loaded: says to source it", (t) => {
    if (systemCuda.length > 0) return t.skip(`this machine has CUDA libraries of its own (${systemCuda.join(", ")})`);
    const dir = path.join(tmp, "a2");
    const native = path.join(dir, "native");
    const pkg = fakeGpuBuild(native, { tfLibResolves: true, cudaWheels: false, seesGpu: false, cudaEnv: true });
    const r = doctor(fakeEnv(fakeNvidiaSmi(dir, T4), native, ""));
    assert.equal(r.builds.gpuCheck?.unresolved.length, 0);
    assert.equal(r.next, `source ${path.join(pkg, "cuda-env.sh")}   (make targets, the kernel launcher and the CLI do this), then: make doctor`);
  });

  test("(b) driver too old for CUDA 12 (and too old to report compute capability): says to update it", () => {
    const dir = path.join(tmp, "b");
    const old = { ...T4, driver: "470.82.01", computeCapability: null };
    assert.ok(!versionAtLeast(old.driver, MIN_DRIVER_CUDA12));
    const r = doctor(fakeEnv(fakeNvidiaSmi(dir, old), path.join(dir, "native"), ""));
    assert.deepEqual(r.nvidia.gpus.map((g) => [g.driver, g.computeCapability]), [["470.82.01", null]]);
    assert.ok(texts(r, "error").some((e) => e === `driver 470.82.01 is too old for CUDA 12: TensorFlow 2.21's GPU build needs ${MIN_DRIVER_CUDA12} or newer on Linux`));
    assert.match(r.next, new RegExp(`^update the NVIDIA driver to ${MIN_DRIVER_CUDA12.replace(/\./g, "\\.")} or newer .*then: make native-gpu$`));
    // Nothing built in that folder: no native engine loads.
    assert.equal(r.engine.active?.kind, "js");
  });

  test("(c) GPU build present and fine: libraries resolve, the CUDA engine is active, next is the GPU check", () => {
    const dir = path.join(tmp, "c");
    const native = path.join(dir, "native");
    fakeGpuBuild(native, { tfLibResolves: true, cudaWheels: true, seesGpu: true, cudaEnv: false });
    const r = doctor(fakeEnv(fakeNvidiaSmi(dir, T4), native, fakeDriverLibs(dir)));
    assert.deepEqual(texts(r, "error"), []);
    const check = r.builds.gpuCheck;
    assert.ok(check);
    assert.deepEqual(check.unresolved, []);
    // libcuda.so.1 from LD_LIBRARY_PATH, the others through the run path of libtensorflow_framework.so.2.
    for (const l of check.cudaLibraries) {
      if (l.soname === "libcuda.so.1") assert.equal(l.foundIn, path.join(dir, "driver-lib"));
      else assert.match(l.foundIn ?? "missing", new RegExp(`^${native.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/tfjs-node-gpu/deps/lib/\\.\\./nvidia/\\w+/lib$`));
    }
    assert.equal(r.engine.active?.kind, "cuda");
    assert.ok(r.engine.notTried.some((s) => s.startsWith(".native/tfjs-node (make native): not tried")));
    assert.ok(texts(r, "ok").includes("TensorFlow sees the GPU: the CUDA engine is active"));
    // Data and weights come next when missing here; with both in place the GPU check is next.
    const expected = r.data.cifar10 !== null ? "make data" : !r.data.weights.present ? "make weights"
      : "bash tools/gpu/check.sh   (then: make run, which runs the full preset)";
    assert.equal(r.next, expected);
  });
});

test("make doctor on this machine: says plainly whether there is an NVIDIA GPU and which engine is active", (t) => {
  const listed = run("nvidia-smi", ["-L"]);
  const r = run(process.execPath, ["--import", "tsx", path.join(ROOT, "src/engine/doctor_main.ts")]);
  assert.equal(r.status, 0, r.stderr);
  const active = r.stdout.split("\n").find((l) => /^(! | {2})active backend: /.test(l));
  assert.ok(active, `names the active engine:\n${r.stdout}`);
  assert.match(r.stdout, /\nnext: \S/);
  if (listed.status === 0 && /^GPU \d/m.test(listed.stdout)) return t.skip("this machine has an NVIDIA GPU");
  assert.match(r.stdout, /\n {2}no NVIDIA GPU: /);
  const forced = process.env.BIAS_INIT_BACKEND;
  if (forced === "native") assert.match(active, /native CPU/);
  if (forced === "js") assert.match(active, /pure JS/);
  if (/native CPU/.test(active)) {
    // The CPU's vector width as /proc/cpuinfo lists it, and the allocator the engine set by default.
    const avx512 = /^flags\s*:.*\bavx512f\b/m.test(fs.existsSync("/proc/cpuinfo") ? fs.readFileSync("/proc/cpuinfo", "utf8") : "");
    assert.match(r.stdout, new RegExp(`\n {2}CPU: .*, ${avx512 ? "with" : "without"} AVX-512; TensorFlow's oneDNN (on|off)`));
    if (process.env.TF_CPU_ALLOCATOR_USE_BFC === undefined) assert.match(r.stdout, /\n {2}TensorFlow's CPU memory: its BFC allocator /);
    // The binding's signal guard (tools/native/patch_binding.py), as /proc shows it in that process.
    if (process.env.BIAS_INIT_SIGNAL_GUARD === undefined) assert.match(r.stdout, /\n {2}signal guard: on: TensorFlow's threads block SIGINT, SIGTERM /);
    // This project's kernels: in use on a CPU with AVX2 and FMA when the engine was built with them (build.sh on x86-64).
    const avx2 = /^flags\s*:(?=.*\bavx2\b)(?=.*\bfma\b)/m.test(fs.existsSync("/proc/cpuinfo") ? fs.readFileSync("/proc/cpuinfo", "utf8") : "");
    const expectKernels = avx2 && process.arch === "x64" && process.env.BIAS_INIT_CUSTOM_OPS === undefined && /via \.native\/tfjs-node /.test(active);
    // The AVX-512 addon where the CPU has AVX-512F (build.sh builds both on x86-64).
    const isa = avx512 ? "AVX-512" : "AVX2";
    assert.match(r.stdout, expectKernels ? new RegExp(`\n {2}training BatchNorm \\+ SiLU, depthwise convolutions, squeeze-excitation: this project's ${avx512 ? "AVX-512" : "AVX2/FMA"} kernels `) : /\n(! | {2})training BatchNorm \+ SiLU, depthwise convolutions, squeeze-excitation: /);
    if (expectKernels) assert.match(active, new RegExp(`this project's ${isa} kernels`));
  }
});

test("make doctor looks for CIFAR-10 where runs do: BIAS_INIT_DATA when set", () => {
  const dataDir = path.join(tmp, "elsewhere-data");
  const report = doctor({ ...process.env, BIAS_INIT_DATA: dataDir });
  assert.equal(report.data.dir, dataDir);
  assert.ok(report.system.disk.some((d) => d.path === path.resolve(dataDir)), JSON.stringify(report.system.disk));
});
