// The first-use engine build (tools/native/ensure.sh, the `engine` prerequisite of make run/lab/
// report/bench) and the GPU build's pieces that can run without a GPU: the CUDA wheel pins against
// a wheel's `and-cuda` extra, the run-path check with readelf, cuda-env.sh and its loading. Real
// builds are not run here (CI's `make native` does that); failures are provoked through a real
// prerequisite check of build.sh: a `node` whose folder has no Node headers.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { zipSync, strToU8 } from "fflate";
import { CUSTOM_OPS_VERSION } from "../src/engine/custom_ops";
import { compileLib, fakeNvidiaSmi, hasGcc, ROOT, run } from "./helpers/fake_gpu";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bias-engine-build-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const ENSURE = path.join(ROOT, "tools/native/ensure.sh");
/** The binding patches build.sh applies and records in READY (its BINDING_PATCHES line). */
const BINDING_PATCHES = (fs.readFileSync(path.join(ROOT, "tools/native/build.sh"), "utf8").match(/^BINDING_PATCHES=(\S+)$/m) ?? [])[1];
const T4 = { name: "Tesla T4", driver: "550.54.15", computeCapability: "7.5", memoryMiB: 15360 };

/** A bin folder whose `node` runs the real one but sits where no include/node/node_api.h is. */
function headerlessNode(dir: string): string {
  const bin = path.join(dir, "headerless", "bin");
  fs.mkdirSync(bin, { recursive: true });
  fs.writeFileSync(path.join(bin, "node"), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} "$@"\n`, { mode: 0o755 });
  return bin;
}

function ensure(env: Record<string, string | undefined>): { status: number | null; out: string; err: string } {
  const full: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete full[k];
  const r = run("bash", [ENSURE], { env: full });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

describe("first-use engine build (tools/native/ensure.sh)", () => {
  test("BIAS_INIT_BACKEND=js skips the build on purpose", () => {
    const native = path.join(tmp, "js");
    const r = ensure({ BIAS_INIT_BACKEND: "js", BIAS_INIT_NATIVE_DIR: native });
    assert.equal(r.status, 0);
    assert.match(r.out, /BIAS_INIT_BACKEND=js: pure JavaScript on purpose, no native build/);
    assert.equal(fs.existsSync(native), false, "nothing was built or created");
  });

  test("an unknown BIAS_INIT_BACKEND is refused", () => {
    const r = ensure({ BIAS_INIT_BACKEND: "tpu", BIAS_INIT_NATIVE_DIR: path.join(tmp, "bad") });
    assert.equal(r.status, 2);
    assert.match(r.err, /BIAS_INIT_BACKEND: "tpu" is not an engine/);
  });

  /** A .native folder whose READY describes a CPU build (an empty binding file), with `extra` facts. */
  function fakeBuilt(name: string, extra: Record<string, string>): string {
    const native = path.join(tmp, name);
    const binding = path.join(native, "tfjs-node", "lib", "napi-v8", "tfjs_binding.node");
    fs.mkdirSync(path.dirname(binding), { recursive: true });
    fs.writeFileSync(binding, "");
    fs.writeFileSync(path.join(native, "READY"), JSON.stringify({
      variant: "cpu", package: "@tensorflow/tfjs-node", tfjsNodeVersion: "4.22.0", wheel: "tensorflow_cpu-2.21.0", bindingPath: binding, ...extra,
    }));
    return native;
  }

  test("a built engine is a fast no-op: build.sh finds its READY and exits at once", () => {
    const native = fakeBuilt("built", { bindingPatches: BINDING_PATCHES, customOps: process.arch === "x64" ? `kernels-${CUSTOM_OPS_VERSION}` : "none" });
    const r = ensure({ BIAS_INIT_BACKEND: undefined, BIAS_INIT_NATIVE_DIR: native, PATH: `${path.join(tmp, "no-gpu")}:${process.env.PATH}` });
    assert.equal(r.status, 0, r.err);
    assert.match(r.out, /native backend already built \(@tensorflow\/tfjs-node 4\.22\.0 on tensorflow-cpu 2\.21\.0\)/);
    assert.doesNotMatch(r.out, /\[native 1\/5\]/, "no build step ran");
  });

  test("an engine built without this project's binding patches, or with only some of them, is rebuilt, not reused", () => {
    assert.match(BINDING_PATCHES, /^string-list-attrs,type-list-attrs,signal-guard$/);
    for (const [name, patches] of [["unpatched", {}], ["before-signal-guard", { bindingPatches: "string-list-attrs,type-list-attrs" }]] as const) {
      const native = fakeBuilt(name, patches);
      // Without Node's headers the rebuild stops at its first step: enough to see that it started.
      const r = ensure({ BIAS_INIT_BACKEND: undefined, BIAS_INIT_NATIVE_DIR: native, PATH: `${headerlessNode(tmp)}:${process.env.PATH}` });
      assert.doesNotMatch(r.out, /native backend already built/, name);
      assert.match(r.err, /THE NATIVE ENGINE BUILD FAILED \(cpu variant\) at step 0\/5/, name);
    }
  });

  test("an engine built before this project's own kernels (tools/native/ops) is rebuilt on x86-64", (t) => {
    if (process.arch !== "x64") return t.skip("the kernels are built on x86-64 only");
    const native = fakeBuilt("without-ops", { bindingPatches: BINDING_PATCHES });
    const r = ensure({ BIAS_INIT_BACKEND: undefined, BIAS_INIT_NATIVE_DIR: native, PATH: `${headerlessNode(tmp)}:${process.env.PATH}` });
    assert.doesNotMatch(r.out, /native backend already built/);
    assert.match(r.err, /THE NATIVE ENGINE BUILD FAILED \(cpu variant\) at step 0\/5/);
  });

  test("a failed build: one loud message naming the step and what to do; auto continues, native fails; no retry", () => {
    const native = path.join(tmp, "failing");
    const env = { BIAS_INIT_NATIVE_DIR: native, PATH: `${headerlessNode(tmp)}:${process.env.PATH}`, BIAS_INIT_BACKEND: undefined };
    const first = ensure(env);
    assert.equal(first.status, 0, "auto: the run goes on (on pure JS)");
    const banner = first.err.split("\n").filter((l) => l.startsWith("[engine]"));
    assert.match(banner[0], /^\[engine\] THE NATIVE ENGINE BUILD FAILED \(cpu variant\) at step 0\/5 \(checking prerequisites\)\.$/);
    assert.match(banner[1], /^\[engine\] what to do: Node's headers are missing from .*headerless\/include\/node/);
    assert.match(first.err, /This run continues on the pure-JS engine/);
    assert.equal(fs.readFileSync(path.join(native, "FAILED-cpu"), "utf8").split("\n")[0], "0/5 (checking prerequisites)");
    const again = ensure(env);
    assert.equal(again.status, 0);
    assert.match(again.out, /the cpu build failed before .*FAILED-cpu\); not retrying here/);
    assert.doesNotMatch(again.out + again.err, /checking prerequisites\.\.\./, "build.sh did not run again");
    assert.match(again.err, /THE NATIVE ENGINE BUILD FAILED \(cpu variant\) at step 0\/5/);
    const forced = ensure({ ...env, BIAS_INIT_BACKEND: "native" });
    assert.equal(forced.status, 1, "BIAS_INIT_BACKEND=native never falls back in silence");
    assert.match(forced.err, /BIAS_INIT_BACKEND=native: stopping here\./);
  });

  test("nvidia-smi listing a GPU selects the GPU build; when it fails, auto falls back to the CPU build, cuda stops", () => {
    const dir = path.join(tmp, "gpu");
    const native = path.join(dir, "native");
    const PATH = `${fakeNvidiaSmi(dir, T4)}:${headerlessNode(dir)}:${process.env.PATH}`;
    const auto = ensure({ BIAS_INIT_NATIVE_DIR: native, PATH, BIAS_INIT_BACKEND: undefined });
    assert.equal(auto.status, 0);
    assert.match(auto.out, /nvidia-smi lists a GPU: the GPU engine \(make native-gpu\)/);
    assert.match(auto.err, /BUILD FAILED \(gpu variant\)[\s\S]*Falling back to the CPU build[\s\S]*BUILD FAILED \(cpu variant\)/);
    assert.ok(fs.existsSync(path.join(native, "FAILED-gpu")) && fs.existsSync(path.join(native, "FAILED-cpu")));
    fs.rmSync(native, { recursive: true });
    const cuda = ensure({ BIAS_INIT_NATIVE_DIR: native, PATH, BIAS_INIT_BACKEND: "cuda" });
    assert.equal(cuda.status, 1);
    assert.match(cuda.err, /BIAS_INIT_BACKEND=cuda: stopping here\./);
    assert.equal(fs.existsSync(path.join(native, "FAILED-cpu")), false, "cuda never tries the CPU build");
  });
});

describe("GPU build pieces that run without a GPU", () => {
  const PY = fs.existsSync(path.join(ROOT, ".venv/bin/python")) ? path.join(ROOT, ".venv/bin/python") : "python3";
  const wheelTool = path.join(ROOT, "tools/native/wheel_tool.py");

  function fakeWheel(requires: string[]): string {
    const meta = ["Metadata-Version: 2.1", "Name: tensorflow", "Version: 2.21.0", "Requires-Dist: numpy>=1.26", "Provides-Extra: and-cuda",
      ...requires.map((r) => `Requires-Dist: ${r}; extra == "and-cuda"`)].join("\n");
    const file = path.join(tmp, `tensorflow-${requires.length}-${Date.now()}.whl`);
    fs.writeFileSync(file, zipSync({ "tensorflow-2.21.0.dist-info/METADATA": strToU8(meta) }));
    return file;
  }

  function pins(lines: string[]): string {
    const file = path.join(tmp, `pins-${Date.now()}-${Math.random()}.txt`);
    fs.writeFileSync(file, ["# test pins", ...lines, ""].join("\n"));
    return file;
  }

  test("cuda-pins: a pin inside the extra's range is used, an unpinned package gets its lower bound", () => {
    const wheel = fakeWheel(["nvidia-cublas-cu12<13.0,>=12.5.3.2", "nvidia-cudnn-cu12<10.0,>=9.3.0.75", "nvidia-nccl-cu12<3.0,>=2.25.1"]);
    const r = run(PY, [wheelTool, "cuda-pins", wheel, pins(["nvidia-cublas-cu12==12.5.3.2", "nvidia_cudnn_cu12 == 9.3.0.75", "nvidia-unused-cu12==1.0"])]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), ["nvidia-cublas-cu12==12.5.3.2", "nvidia-cudnn-cu12==9.3.0.75", "nvidia-nccl-cu12==2.25.1"]);
    assert.match(r.stderr, /nvidia-nccl-cu12==2\.25\.1 \(not pinned: the wheel's lower bound/);
    assert.match(r.stderr, /nvidia-unused-cu12: pinned in .* but not asked for by the wheel; ignored/);
  });

  test("cuda-pins: a pin outside the extra's range fails, naming it", () => {
    const wheel = fakeWheel(["nvidia-cudnn-cu12<10.0,>=9.3.0.75"]);
    const r = run(PY, [wheelTool, "cuda-pins", wheel, pins(["nvidia-cudnn-cu12==9.1.0.70"])]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /nvidia-cudnn-cu12==9\.1\.0\.70 is outside the wheel's requirement 'nvidia-cudnn-cu12<10\.0,>=9\.3\.0\.75'; update the pin/);
  });

  test("the project's pins file is well-formed name==version lines", () => {
    const wheel = fakeWheel(["nvidia-cuda-runtime-cu12>=12.0"]);
    const r = run(PY, [wheelTool, "cuda-pins", wheel, path.join(ROOT, "tools/native/cuda-pins.txt")]);
    assert.equal(r.status, 0, r.stderr);
    const pinned = fs.readFileSync(path.join(ROOT, "tools/native/cuda-pins.txt"), "utf8").split("\n").filter((l) => l && !l.startsWith("#"));
    const runtime = pinned.find((l) => l.startsWith("nvidia-cuda-runtime-cu12=="));
    assert.equal(r.stdout.trim(), runtime);
  });

  test("check_runpath.sh reads DT_RUNPATH with readelf and names the CUDA folders it does not cover", { skip: hasGcc ? false : "needs gcc" }, () => {
    const deps = path.join(tmp, "runpath", "deps");
    compileLib(path.join(deps, "lib", "libtensorflow_framework.so.2"), { runpath: ["$ORIGIN/../nvidia/cublas/lib", "$ORIGIN/../nvidia/cudnn/lib"] });
    compileLib(path.join(deps, "lib", "libtensorflow_cc.so.2"), { runpath: ["$ORIGIN"] });
    for (const p of ["cublas", "cudnn"]) fs.mkdirSync(path.join(deps, "nvidia", p, "lib"), { recursive: true });
    const script = path.join(ROOT, "tools/native/check_runpath.sh");
    const covered = run("bash", [script, path.join(deps, "lib"), path.join(deps, "nvidia")]);
    assert.equal(covered.status, 0, covered.stdout + covered.stderr);
    assert.match(covered.stdout, /libtensorflow_framework\.so\.2: 2 run path entries, 2 of the form/);
    assert.match(covered.stdout, /run paths cover every CUDA wheel folder \(cublas cudnn\)/);
    fs.mkdirSync(path.join(deps, "nvidia", "cufft", "lib"), { recursive: true });
    const partly = run("bash", [script, path.join(deps, "lib"), path.join(deps, "nvidia")]);
    assert.equal(partly.status, 1);
    assert.match(partly.stdout, /run paths do NOT cover: cufft \(covered: cublas cudnn\)/);
  });

  test("cuda-env.sh: written from the wheel folders, loaded by engine-env.sh once, not for BIAS_INIT_BACKEND=js", () => {
    const native = path.join(tmp, "cuda-env");
    const pkg = path.join(native, "tfjs-node-gpu");
    for (const p of ["cublas", "cudnn"]) fs.mkdirSync(path.join(pkg, "deps", "nvidia", p, "lib"), { recursive: true });
    const w = run("bash", [path.join(ROOT, "tools/native/write_cuda_env.sh"), pkg]);
    assert.equal(w.status, 0, w.stderr);
    const show = 'source tools/native/engine-env.sh; source tools/native/engine-env.sh; echo "$LD_LIBRARY_PATH|${TF_FORCE_GPU_ALLOW_GROWTH:-}|${BIAS_INIT_CUDA_ENV:-}"';
    const env = (extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv => {
      const e: NodeJS.ProcessEnv = { ...process.env, BIAS_INIT_NATIVE_DIR: native, LD_LIBRARY_PATH: "/opt/x" };
      delete e.BIAS_INIT_CUDA_ENV;
      delete e.TF_FORCE_GPU_ALLOW_GROWTH;
      delete e.BIAS_INIT_BACKEND;
      return { ...e, ...extra };
    };
    const loaded = run("bash", ["-c", show], { env: env({}) }).stdout.trim().split("|");
    const dirs = ["cublas", "cudnn"].map((p) => path.join(pkg, "deps", "nvidia", p, "lib"));
    assert.deepEqual(loaded, [`${dirs.join(":")}:/opt/x`, "true", path.join(pkg, "cuda-env.sh")]);
    const kept = run("bash", ["-c", show], { env: env({ TF_FORCE_GPU_ALLOW_GROWTH: "false" }) }).stdout.trim().split("|");
    assert.equal(kept[1], "false", "a value the user set is kept");
    const js = run("bash", ["-c", show], { env: env({ BIAS_INIT_BACKEND: "js" }) }).stdout.trim().split("|");
    assert.deepEqual(js, ["/opt/x", "", ""]);
  });

  test("the CLI started directly runs itself again through cuda-env.sh (and only once)", () => {
    const native = path.join(tmp, "cli-env");
    const pkg = path.join(native, "tfjs-node-gpu");
    fs.mkdirSync(pkg, { recursive: true });
    // A stand-in cuda-env.sh whose effect the CLI shows: it sets a preset that does not exist.
    fs.writeFileSync(path.join(pkg, "cuda-env.sh"), `export BIAS_INIT_CUDA_ENV=${path.join(pkg, "cuda-env.sh")}\nexport BIAS_INIT_PRESET=from-cuda-env\n`);
    const env: NodeJS.ProcessEnv = { ...process.env, BIAS_INIT_NATIVE_DIR: native };
    delete env.BIAS_INIT_CUDA_ENV;
    delete env.BIAS_INIT_BACKEND;
    delete env.BIAS_INIT_PRESET;
    const r = run(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli.ts"), "--dry-run"], { env });
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.equal(r.stderr.split("\n").filter((l) => l.startsWith("[engine] loading")).length, 1);
    assert.match(r.stderr, new RegExp(`\\[engine\\] loading ${path.join(pkg, "cuda-env.sh").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(CUDA library paths\\) and starting again`));
    assert.match(r.stderr, /error: BIAS_INIT_PRESET: "from-cuda-env" is not a preset/);
    const js = run(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli.ts"), "--help"], { env: { ...env, BIAS_INIT_BACKEND: "js" } });
    assert.equal(js.status, 0);
    assert.doesNotMatch(js.stderr, /\[engine\] loading/);
  });
});
