// This project's kernels are built twice (tools/native/ops/simd.h): for AVX2 + FMA and for AVX-512.
// The engine loads the AVX-512 addon on a CPU with AVX-512F; the two must give the same bits, since
// each lane does the same operations in the same order at either width. Two processes
// (test/helpers/kernel_threads.ts: BatchNorm + SiLU, the depthwise convolutions and
// squeeze-excitation's passes, forward and gradients, 40 channels so the AVX-512 addon runs both its
// 16- and 8-wide loops) hash every output, one with BIAS_INIT_CUSTOM_OPS=avx2. Skipped where no
// native engine with the kernels is built, or where the CPU lacks AVX-512F (then only the AVX2
// addon can run: its numbers are tested in test/native_ops.test.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { spawnSync } from "child_process";
import { nativeDir } from "../src/engine/backend";
import { customOpsPath } from "../src/engine/custom_ops";
import { cpuInfo } from "../src/util/cpu_info";

interface KernelRun {
  active: boolean;
  isa: string | null;
  hash: string;
}

function runKernels(env: NodeJS.ProcessEnv): KernelRun {
  const r = spawnSync(process.execPath, ["--import", "tsx", path.join(__dirname, "helpers", "kernel_threads.ts")],
    { env: { ...process.env, ...env, BIAS_INIT_BACKEND: "native" }, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split("\n").pop() as string) as KernelRun;
}

test("this project's AVX-512 kernels give the same bits as its AVX2 kernels", (t) => {
  const pkg = path.join(nativeDir(), "tfjs-node");
  if (!fs.existsSync(customOpsPath(pkg))) return t.skip(`no kernels built in ${pkg} (\`make native\`)`);
  const flags = cpuInfo().flags;
  if (!flags.has("avx512f") || !flags.has("avx2") || !flags.has("fma")) return t.skip("this CPU lacks AVX-512F (or AVX2 and FMA): only one addon can run here");
  if (process.env.BIAS_INIT_CUSTOM_OPS !== undefined) return t.skip(`BIAS_INIT_CUSTOM_OPS=${process.env.BIAS_INIT_CUSTOM_OPS} is set`);
  assert.ok(fs.existsSync(customOpsPath(pkg, "avx512")), `the engine was built without ${customOpsPath(pkg, "avx512")}: \`make native ARGS=--force\``);
  const wide = runKernels({});
  const narrow = runKernels({ BIAS_INIT_CUSTOM_OPS: "avx2" });
  assert.deepEqual([wide.active, wide.isa, narrow.active, narrow.isa], [true, "avx512", true, "avx2"]);
  assert.match(wide.hash, /^[0-9a-f]{64}$/);
  assert.equal(wide.hash, narrow.hash);
});
