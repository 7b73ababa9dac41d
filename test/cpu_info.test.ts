// util/cpu_info.ts against /proc/cpuinfo read here independently, and TensorFlow's oneDNN rule
// (DefaultOneDnnPolicy in tensorflow/core/util/port.cc) with and without TF_ENABLE_ONEDNN_OPTS.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import { cpuInfo, hasAvx512, tensorflowOneDnnOn } from "../src/util/cpu_info";

const text = fs.existsSync("/proc/cpuinfo") ? fs.readFileSync("/proc/cpuinfo", "utf8") : "";
const flags = (/^flags\s*:(.*)$/m.exec(text)?.[1] ?? "").trim().split(/\s+/).filter(Boolean);

test("cpuInfo reads the first core's flags and model; hasAvx512 is avx512f", () => {
  assert.deepEqual([...cpuInfo().flags].sort(), [...new Set(flags)].sort());
  assert.equal(cpuInfo().model, /^model name\s*:\s*(.*)$/m.exec(text)?.[1]);
  assert.equal(hasAvx512(), flags.includes("avx512f"));
});

test("tensorflowOneDnnOn: TF_ENABLE_ONEDNN_OPTS wins when 1/true/0/false; otherwise on only with AVX-512 VNNI/BF16, AVX-VNNI or AMX", () => {
  for (const v of ["1", "true", "TRUE", " 1 "]) assert.equal(tensorflowOneDnnOn({ TF_ENABLE_ONEDNN_OPTS: v }), true, v);
  for (const v of ["0", "false", "False"]) assert.equal(tensorflowOneDnnOn({ TF_ENABLE_ONEDNN_OPTS: v }), false, v);
  const byDefault = ["avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"].some((f) => flags.includes(f));
  assert.equal(tensorflowOneDnnOn({}), byDefault);
  assert.equal(tensorflowOneDnnOn({ TF_ENABLE_ONEDNN_OPTS: "maybe" }), byDefault, "TensorFlow keeps its default for other values");
});
