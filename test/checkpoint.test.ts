// The PyTorch checkpoint reader and the state_dict -> model mapping on small, hand-checkable
// inputs, and every bad input we can think of: each gives one clear error and loads nothing.
// (The full-size parity with torchvision is test/parity.test.ts.)
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { zipSync } from "fflate";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../src/engine/backend";
import { ChecksumError, FetchLike } from "../src/util/download";
import { CheckpointError, parseCheckpoint, readCheckpoint, StateDict, TensorData } from "../src/model/torch_pth";
import { efficientNetArchitecture, variablePlan } from "../src/model/architecture";
import { buildEfficientNet } from "../src/model/efficientnet";
import {
  ensureImagenetWeights, loadStateDict, StateDictMismatchError, stateDictProblems, toVariableLayout, WeightsUnavailableError,
} from "../src/model/pretrained";
import type { VariableSpec } from "../src/model/ops/variables";
import { makeRng } from "../src/rng";
import { fixture } from "./helpers/torch_fixture";


const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bias-checkpoint-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const tmpFile = (name: string, bytes: Uint8Array): string => {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, bytes);
  return file;
};

function entry(state: StateDict, key: string): TensorData {
  const t = state.get(key);
  assert.ok(t, `key ${key} present`);
  return t;
}

test("a real torch.save file reads back exactly: dtypes, shapes, shared storage, offsets and strides", () => {
  const state = readCheckpoint(tmpFile("fixture.pth", fixture()));
  assert.deepEqual([...state.keys()], ["f32", "f32_transposed", "f32_slice", "f32_every_other_column", "f16", "bf16",
    "f64", "i64", "i64_scalar", "u8", "param"]);
  const expect = (key: string, dtype: string, shape: number[], values: unknown[]): void => {
    const t = entry(state, key);
    assert.equal(t.dtype, dtype, key);
    assert.deepEqual(t.shape, shape, key);
    assert.deepEqual(Array.from(t.data as ArrayLike<unknown>), values, key);
  };
  expect("f32", "float32", [3, 4], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  expect("f32_transposed", "float32", [4, 3], [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
  expect("f32_slice", "float32", [2, 2], [5, 6, 9, 10]);
  expect("f32_every_other_column", "float32", [3, 2], [0, 2, 4, 6, 8, 10]);
  expect("f16", "float16", [4], [0.5, -2, 65504, 2 ** -24]);
  expect("bf16", "bfloat16", [3], [1, -3.5, 2 ** 100]);
  expect("f64", "float64", [1], [1 / 3]);
  expect("i64", "int64", [3], [-1n, 2n ** 40n, 7n]);
  expect("i64_scalar", "int64", [], [42n]);
  expect("u8", "uint8", [2], [0, 255]);
  expect("param", "float32", [2], [1.5, 2.5]);
  assert.ok(entry(state, "f32").data instanceof Float32Array);
  assert.ok(entry(state, "f64").data instanceof Float64Array);
});

test("a truncated checkpoint is one clear error naming the file", () => {
  const whole = fixture();
  for (const keep of [whole.length - 1, Math.floor(whole.length / 2), 10]) {
    const file = tmpFile(`cut-${keep}.pth`, whole.subarray(0, keep));
    assert.throws(() => readCheckpoint(file), (e: Error) => {
      assert.ok(e instanceof CheckpointError);
      assert.ok(e.message.startsWith(`checkpoint ${file}: `), e.message);
      assert.match(e.message, keep === 10 ? /not a zip file/ : /truncated or corrupt/);
      return true;
    });
  }
  assert.throws(() => readCheckpoint(path.join(tmp, "absent.pth")), /checkpoint .*absent\.pth: cannot read it/);
});

test("other malformed files: legacy format, no data.pkl, a storage shorter than its tensor, a dict that is not a state_dict", () => {
  assert.throws(() => parseCheckpoint(new Uint8Array([0x80, 0x02, 0x8a, 0x0a]), "old.pth"),
    /checkpoint old\.pth: this is the legacy \(pre-1\.6\) torch\.save format/);
  assert.throws(() => parseCheckpoint(zipSync({ "x/readme.txt": new Uint8Array(3) }, { level: 0 }), "nopkl.pth"),
    /checkpoint nopkl\.pth: no <folder>\/data\.pkl entry .*x\/readme\.txt/);
  // {"w": tensor of 4 float32 in storage "0"} whose storage file holds 8 bytes instead of 16.
  const pkl = pickle(
    "\x80\x02}q\x00X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n",
    "((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ",
    "K\x00K\x04\x85K\x01\x85\x89)tRs.");
  const short = zipSync({ "m/data.pkl": pkl, "m/data/0": new Uint8Array(8) }, { level: 0 });
  assert.throws(() => parseCheckpoint(short, "short.pth"),
    /checkpoint short\.pth: tensor "w": storage 0 has 8 bytes, its 4 float32 elements need 16/);
  const ok = zipSync({ "m/data.pkl": pkl, "m/data/0": new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer) }, { level: 0 });
  assert.deepEqual(Array.from(entry(parseCheckpoint(ok, "ok.pth"), "w").data as Float32Array), [1, 2, 3, 4]);
  // {"w": 3}: a dict, but not of tensors.
  const notTensors = zipSync({ "m/data.pkl": pickle("\x80\x02}X\x01\x00\x00\x00wK\x03s.") }, { level: 0 });
  assert.throws(() => parseCheckpoint(notTensors, "n.pth"), /checkpoint n\.pth: state_dict entry "w" is number 3, not a tensor/);
});

/** Pickle bytes from latin-1 strings (one char = one byte). */
function pickle(...parts: string[]): Uint8Array {
  return new Uint8Array(Buffer.from(parts.join(""), "latin1"));
}

test("a pickle naming any global outside the allow-list is refused before anything runs", () => {
  const marker = path.join(tmp, "pwned");
  const command = `touch ${marker}`;
  // Protocol 2 GLOBAL: os.system("touch ...") -- what a malicious .pth does.
  const osSystem = pickle("\x80\x02cos\nsystem\nq\x00X", u32(command.length), command, "\x85R.");
  // Protocol 4 STACK_GLOBAL: builtins.eval("...")
  const code = `open(${JSON.stringify(marker)}, "w")`;
  const evalPkl = pickle("\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c", String.fromCharCode(code.length), code, "\x85R.");
  // The allowed OrderedDict, then subprocess.Popen inside a value.
  const nested = pickle("\x80\x02ccollections\nOrderedDict\n)RX\x01\x00\x00\x00acsubprocess\nPopen\ns.");
  for (const [name, pkl, global] of [["os", osSystem, "os.system"], ["eval", evalPkl, "builtins.eval"], ["popen", nested, "subprocess.Popen"]] as const) {
    const file = tmpFile(`${name}.pth`, zipSync({ "evil/data.pkl": pkl, "evil/byteorder": pickle("little") }, { level: 0 }));
    assert.throws(() => readCheckpoint(file), (e: Error) => {
      assert.ok(e instanceof CheckpointError);
      assert.ok(e.message.startsWith(`checkpoint ${file}: pickle references forbidden global ${global} `), e.message);
      return true;
    });
  }
  assert.equal(fs.existsSync(marker), false, "nothing was executed");
});

function u32(n: number): string {
  return String.fromCharCode(n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff);
}

test("layout conversion: conv OIHW -> HWIO, depthwise [C,1,k,k] -> [k,k,C,1], 1x1 [O,I,1,1] -> [I,O], linear [out,in] -> [in,out]", () => {
  const spec = (torchShape: number[], shape: number[]): VariableSpec =>
    ({ key: "k", torchShape, shape, trainable: true, init: { kind: "constant", value: 0 } });
  const t = (shape: number[], values: number[]): TensorData => ({ dtype: "float32", shape, data: Float32Array.from(values) });
  // conv O=2, I=3, 1x2: value = 100*o + 10*i + w. HWIO [1, 2, 3, 2] lists (w, i, o) with o fastest.
  const oihw = [0, 1, 10, 11, 20, 21, 100, 101, 110, 111, 120, 121];
  assert.deepEqual(Array.from(toVariableLayout(t([2, 3, 1, 2], oihw), spec([2, 3, 1, 2], [1, 2, 3, 2]))),
    [0, 100, 10, 110, 20, 120, 1, 101, 11, 111, 21, 121]);
  // depthwise C=2, 2x2: value = 10*c + 2*h + w. [2, 2, 2, 1] lists (h, w, c) with c fastest.
  assert.deepEqual(Array.from(toVariableLayout(t([2, 1, 2, 2], [0, 1, 2, 3, 10, 11, 12, 13]), spec([2, 1, 2, 2], [2, 2, 2, 1]))),
    [0, 10, 1, 11, 2, 12, 3, 13]);
  // 1x1 conv O=2, I=3 into the 2-D [I, O] the model keeps: value = 10*o + i, listed (i, o) with o fastest.
  assert.deepEqual(Array.from(toVariableLayout(t([2, 3, 1, 1], [0, 1, 2, 10, 11, 12]), spec([2, 3, 1, 1], [3, 2]))), [0, 10, 1, 11, 2, 12]);
  // linear out=2, in=3.
  assert.deepEqual(Array.from(toVariableLayout(t([2, 3], [1, 2, 3, 4, 5, 6]), spec([2, 3], [3, 2]))), [1, 4, 2, 5, 3, 6]);
});

/** A state_dict with the keys and PyTorch shapes of `plan` (value = position in the plan + 1). */
function syntheticStateDict(plan: VariableSpec[]): StateDict {
  const state: StateDict = new Map();
  plan.forEach((p, i) => {
    const size = p.torchShape.reduce((a, b) => a * b, 1);
    state.set(p.key, { dtype: "float32", shape: [...p.torchShape], data: new Float32Array(size).fill(i + 1) });
    if (p.key.endsWith(".running_var")) {
      state.set(p.key.replace(/running_var$/, "num_batches_tracked"), { dtype: "int64", shape: [], data: new BigInt64Array([5n]) });
    }
  });
  return state;
}

test("a B0 state_dict into B1: every missing key listed by name in the error, one line of message, and nothing loaded", async () => {
  await initBackend();
  const b1 = buildEfficientNet("b1", makeRng("checkpoint-test"));
  try {
    const before = b1.getWeights();
    const b0State = syntheticStateDict(variablePlan(efficientNetArchitecture("b0")));
    let error: StateDictMismatchError | undefined;
    try {
      loadStateDict(b1, b0State, "checkpoint b0.pth");
    } catch (e) {
      error = e as StateDictMismatchError;
    }
    assert.ok(error instanceof StateDictMismatchError, String(error));
    // B1's depth multiplier 1.1 adds one block to stages 1-7 (ceil(n * 1.1) layers): features.1.1
    // (no expansion conv: 14 keys) and features.2.2, 3.2, 4.3, 5.3, 6.4, 7.1 (19 keys each). B0's
    // keys are all B1 keys with the same shapes, so nothing is unexpected.
    assert.equal(error.problems.length, 14 + 6 * 19);
    assert.ok(error.problems.every((p) => p.startsWith("missing ")), error.problems.join("\n"));
    const blocks = new Set(error.problems.map((p) => p.split(" ")[1].split(".").slice(0, 3).join(".")));
    assert.deepEqual([...blocks].sort(), ["features.1.1", "features.2.2", "features.3.2", "features.4.3", "features.5.3", "features.6.4", "features.7.1"]);
    assert.equal(error.message, "checkpoint b0.pth: does not fit efficientnet b1 (128 problem(s), first: missing features.1.1.block.0.0.weight (expected [16, 1, 3, 3])); " +
      "nothing was loaded, use torchvision's efficientnet b1 weights (make weights)");
    assert.ok(error.problems.includes("missing features.2.2.block.0.0.weight (expected [144, 24, 1, 1])"), error.problems.join("\n"));
    const after = b1.getWeights();
    for (const [key, values] of before) assert.deepEqual(after.get(key), values, `${key} unchanged`);
  } finally {
    b1.dispose();
  }
});

test("wrong shape, wrong dtype, missing and extra keys are all reported together", () => {
  const plan = variablePlan(efficientNetArchitecture("tiny"));
  const state = syntheticStateDict(plan);
  state.set("features.0.0.weight", { dtype: "float32", shape: [8, 3, 5, 5], data: new Float32Array(600) });
  state.set("features.0.1.bias", { dtype: "int64", shape: [8], data: new BigInt64Array(8) });
  state.delete("classifier.1.bias");
  state.set("classifier.2.weight", { dtype: "float32", shape: [1], data: new Float32Array(1) });
  state.set("features.99.1.num_batches_tracked", { dtype: "int64", shape: [], data: new BigInt64Array(1) });
  assert.deepEqual(stateDictProblems(plan, state), [
    "shape of features.0.0.weight is [8, 3, 5, 5], expected [8, 3, 3, 3]",
    "dtype of features.0.1.bias is int64, expected a floating-point type",
    "missing classifier.1.bias (expected [1000])",
    "unexpected classifier.2.weight [1]",
    "unexpected features.99.1.num_batches_tracked []",
  ]);
  assert.deepEqual(stateDictProblems(plan, syntheticStateDict(plan)), [], "its own state_dict (with num_batches_tracked) fits");
});

test("a fitting state_dict lands in the variables in TF.js layout", async () => {
  await initBackend();
  const model = buildEfficientNet("tiny", makeRng("checkpoint-test-tiny"));
  try {
    const plan = model.variablePlan();
    const state = syntheticStateDict(plan);
    // The stem conv, PyTorch [8, 3, 3, 3]: value = o*1000 + i*100 + h*10 + w.
    const stem = new Float32Array(8 * 27).map((_, k) => Math.floor(k / 27) * 1000 + (Math.floor(k / 9) % 3) * 100 + (Math.floor(k / 3) % 3) * 10 + (k % 3));
    state.set("features.0.0.weight", { dtype: "float32", shape: [8, 3, 3, 3], data: stem });
    loadStateDict(model, state, "synthetic");
    const w = model.namedVariables().get("features.0.0.weight") as tf.Variable;
    assert.deepEqual(w.shape, [3, 3, 3, 8]);
    const hwio = w.arraySync() as number[][][][];
    assert.equal(hwio[2][1][0][7], 7021); // h=2, w=1, i=0, o=7
    assert.equal(hwio[0][2][2][3], 3202);
    const bias = model.namedVariables().get("classifier.1.bias") as tf.Variable;
    assert.deepEqual(Array.from(bias.dataSync()).slice(0, 2), [plan.length, plan.length]);
  } finally {
    model.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// Getting the weights file: wrong hashes and no network.

async function withoutWeightsEnv<T>(fn: () => Promise<T>): Promise<T> {
  const saved = process.env.EFFICIENTNET_B1_WEIGHTS;
  delete process.env.EFFICIENTNET_B1_WEIGHTS;
  try {
    return await fn();
  } finally {
    if (saved !== undefined) process.env.EFFICIENTNET_B1_WEIGHTS = saved;
  }
}

const fetchBytes = (bytes: Uint8Array): FetchLike => async () => ({
  ok: true, status: 200, statusText: "OK",
  headers: { get: (name: string) => (name.toLowerCase() === "content-length" ? String(bytes.length) : null) },
  body: (async function* () { yield bytes; })(),
});

test("a local copy with the wrong SHA-256 is refused, naming the file and the expected c27df63c", async () => {
  const dir = path.join(tmp, "weights-local");
  const copy = tmpFile("not-the-weights.pth", fixture());
  await assert.rejects(ensureImagenetWeights({ dir, localCopy: copy }), (e: Error) => {
    assert.ok(e instanceof ChecksumError, String(e));
    assert.ok(e.message.includes(copy), e.message);
    assert.match(e.message, /: wrong sha256 checksum \(expected c27df63c, got [0-9a-f]{64}\)/);
    return true;
  });
  // Through the environment variable too.
  process.env.EFFICIENTNET_B1_WEIGHTS = copy;
  try {
    await assert.rejects(ensureImagenetWeights({ dir }), ChecksumError);
  } finally {
    delete process.env.EFFICIENTNET_B1_WEIGHTS;
  }
  assert.equal(fs.existsSync(path.join(dir, "efficientnet_b1-c27df63c.pth")), false, "nothing left at the destination");
});

test("a download with the wrong SHA-256 is refused and leaves no file", async () => {
  const dir = path.join(tmp, "weights-download");
  await withoutWeightsEnv(() => assert.rejects(ensureImagenetWeights({ dir, fetchImpl: fetchBytes(fixture()) }), (e: Error) => {
    assert.ok(e instanceof ChecksumError, String(e));
    assert.ok(e.message.includes("https://download.pytorch.org/models/efficientnet_b1-c27df63c.pth"), e.message);
    assert.match(e.message, /: wrong sha256 checksum \(expected c27df63c, got [0-9a-f]{64}\)/);
    return true;
  }));
  assert.deepEqual(fs.existsSync(dir) ? fs.readdirSync(dir) : [], []);
});

test("no network and no file: WeightsUnavailableError says exactly what to run", async () => {
  const dir = path.join(tmp, "weights-offline");
  const offline: FetchLike = async () => {
    throw Object.assign(new TypeError("fetch failed"), { cause: Object.assign(new Error("getaddrinfo ENOTFOUND download.pytorch.org"), { code: "ENOTFOUND" }) });
  };
  await withoutWeightsEnv(() => assert.rejects(ensureImagenetWeights({ dir, fetchImpl: offline }), (e: Error) => {
    assert.ok(e instanceof WeightsUnavailableError, String(e));
    assert.match(e.message, /EfficientNet_B1_Weights\.IMAGENET1K_V2 weights are not available: could not download .*ENOTFOUND/);
    assert.ok(e.message.includes("Run `make weights`"), e.message);
    assert.ok(e.message.includes(`put it at ${path.join(dir, "efficientnet_b1-c27df63c.pth")}`), e.message);
    assert.ok(e.message.includes("set EFFICIENTNET_B1_WEIGHTS=/path/to/efficientnet_b1-c27df63c.pth"), e.message);
    return true;
  }));
  await assert.rejects(ensureImagenetWeights({ model: "tiny", dir }), /no ImageNet weights exist for efficientnet "tiny"/);
  await assert.rejects(ensureImagenetWeights({ dir, localCopy: path.join(tmp, "nowhere.pth") }),
    (e: Error) => e instanceof WeightsUnavailableError && /local copy .*nowhere\.pth does not exist/.test(e.message));
});
