// Seeded fuzz of the .pth reader over a real checkpoint: tools/pth_fuzz_reference.py saves a
// torchvision EfficientNet-B1 state_dict with torch (31 MB, 508 tensors) and maps its zip records
// and pickle opcodes with Python's own tools; test/helpers/pth_mutations.ts draws the mutations
// (truncations, bit flips, zip size/offset/count/method fields, pickle opcode swaps, huge counts,
// hostile views, forbidden globals) and test/helpers/pth_fuzz_run.ts runs them in a child process,
// whose peak resident memory is then the reader's alone.
// Every case must end in one CheckpointError (a UserError, one line, naming the file) or a valid
// state_dict; the slowest case must take under 2 s and the process must stay under 1 GB resident,
// and nothing may be executed or written (every exec/spawn/file-write/eval is trapped during cases).
// Those two bounds are here, not in bench/, because they are what a hostile file attacks: a case
// over them is a denial of service, not a slow machine (a normal case takes milliseconds).
//   default: 5000 cases (~1 minute on 2 cores)
//   longer:  BIAS_INIT_FUZZ_CASES=100000 node --import tsx --test test/pth_fuzz.test.ts
// Case i of the seed is drawn from makeRng(SEED, "case", i): a failing case is replayed alone with
//   node --import tsx test/helpers/pth_fuzz_run.ts DIR SEED i 1   (DIR from the Python tool above).
import { describe, before, after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { readEnvironment } from "../src/config";
import { PROJECT_ROOT } from "../src/engine/backend";
import type { FuzzSummary } from "./helpers/pth_fuzz_run";
import type { Layout } from "./helpers/pth_mutations";

const PYTHON = path.join(PROJECT_ROOT, ".venv", "bin", "python");
const TOOL = path.join(PROJECT_ROOT, "tools", "pth_fuzz_reference.py");
const RUNNER = path.join(PROJECT_ROOT, "test", "helpers", "pth_fuzz_run.ts");
const skip = fs.existsSync(PYTHON) ? false : `needs ${PYTHON} with torch and torchvision (run \`make setup\`)`;
const SEED = 20261201;
const DEFAULT_CASES = 5000;
const MAX_CASE_MS = 2000;
const MAX_RSS_MB = 1024;
/** A case still running after this long is a hang: the child is stopped and the case named. */
const HANG_MS = 30_000;

function caseCount(): number {
  const value = readEnvironment().BIAS_INIT_FUZZ_CASES;
  if (value === null) return DEFAULT_CASES;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`BIAS_INIT_FUZZ_CASES: "${value}" is not a positive integer`);
  return n;
}

/** Runs the cases in a child; rejects naming the case if one runs longer than HANG_MS. */
function runCases(dir: string, cases: number): Promise<FuzzSummary> {
  const progress = path.join(dir, "current.txt");
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", RUNNER, dir, String(SEED), "0", String(cases)],
      { cwd: PROJECT_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    let last = "";
    let since = Date.now();
    const watch = setInterval(() => {
      const now = fs.existsSync(progress) ? fs.readFileSync(progress, "utf8") : "";
      if (now !== last) {
        last = now;
        since = Date.now();
      } else if (now !== "" && Date.now() - since > HANG_MS) {
        clearInterval(watch);
        child.kill("SIGKILL");
        reject(new Error(`a case ran over ${HANG_MS / 1000} s (the child was stopped): ${now}`));
      }
    }, 1000);
    child.on("close", (code, signal) => {
      clearInterval(watch);
      if (code !== 0) {
        reject(new Error(`fuzz child exited ${code ?? signal} during ${fs.existsSync(progress) ? fs.readFileSync(progress, "utf8") : "start-up"}: ${stderr.slice(-2000)}`));
        return;
      }
      resolve(JSON.parse(stdout.trim().split("\n").pop() as string) as FuzzSummary);
    });
  });
}

describe("the .pth reader against mutations of a real torchvision B1 checkpoint", { skip }, () => {
  let dir = "";
  let layout: Layout;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "bias-pth-fuzz-"));
    execFileSync(PYTHON, [TOOL, dir], { stdio: ["ignore", "ignore", "inherit"], timeout: 240_000 });
    layout = JSON.parse(fs.readFileSync(path.join(dir, "layout.json"), "utf8")) as Layout;
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const cases = caseCount();
  test(`${cases} seeded cases: each one CheckpointError or a valid load, under ${MAX_CASE_MS} ms and ${MAX_RSS_MB} MB, executing nothing`, async (t) => {
    const s = await runCases(dir, cases);
    const reasons = Object.entries(s.reasons).sort((a, b) => b[1] - a[1]);
    t.diagnostic(`${s.cases} cases in ${s.seconds.toFixed(1)} s (${(s.cases / s.seconds).toFixed(0)} cases/s): ${s.loaded} loaded, ` +
      `${s.refused} refused (${reasons.length} distinct messages, ${s.forbiddenGlobals} forbidden globals); slowest ${s.maxCaseMs.toFixed(0)} ms ` +
      `(${s.slowestCase.slice(0, 160)}); peak RSS ${s.peakRssMb.toFixed(0)} MB; per kind ${JSON.stringify(s.perKind)}`);
    t.diagnostic(`most frequent refusals: ${reasons.slice(0, 8).map(([r, n]) => `${n}x "${r.trim()}"`).join("; ")}`);
    assert.equal(s.baselineTensors, layout.tensors, "the unmutated checkpoint loads all its tensors");
    assert.deepEqual(s.bugs.slice(0, 10), [], `${s.bugs.length} case(s) ended otherwise`);
    assert.deepEqual(s.trapped, [], "nothing executed or written while reading");
    assert.ok(s.maxCaseMs < MAX_CASE_MS, `slowest case ${s.maxCaseMs.toFixed(0)} ms: ${s.slowestCase}`);
    assert.ok(s.peakRssMb < MAX_RSS_MB, `peak resident memory ${s.peakRssMb.toFixed(0)} MB`);
    // The mutations reach every layer of the reader, not only the first check.
    assert.equal(s.loaded + s.refused, cases);
    for (const [kind, n] of Object.entries(s.perKind)) assert.ok(n > 0, `no ${kind} mutation drawn`);
    if (cases >= 1000) {
      assert.ok(s.loaded > 0, "some mutations still load (e.g. bit flips in weights)");
      assert.ok(s.forbiddenGlobals > 0, "mutations reached GLOBAL with names outside the allow-list, and were refused");
      for (const reached of ["the zip is truncated or corrupt", "data.pkl", "view (offset", "names more elements"]) {
        assert.ok(reasons.some(([r]) => r.includes(reached)), `no refusal mentioning "${reached}"`);
      }
    }
  });
});
