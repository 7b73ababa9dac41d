// Child process for test/pth_fuzz.test.ts: runs fuzz cases [from, from + cases) of `seed` over the
// checkpoint and layout that tools/pth_fuzz_reference.py wrote into DIR, through parseCheckpoint,
// and prints one JSON line (FuzzSummary). Its own process, so that its peak resident memory is
// the reader's and nothing else's. Before each case it writes the case's number and mutation to
// DIR/current.txt, so a case that hangs is named by the parent after the timeout.
//   node --import tsx test/helpers/pth_fuzz_run.ts DIR SEED FROM CASES
// While cases run, every way of executing something or writing a file is replaced by a trap that
// counts: the reader must never call one.
import * as fs from "fs";
import * as path from "path";
import { UserError } from "../../src/errors";
import { CheckpointError, parseCheckpoint, StateDict } from "../../src/model/torch_pth";
import { applyMutation, Kind, KINDS, Layout, Mutator } from "./pth_mutations";

export interface FuzzSummary {
  cases: number;
  seconds: number;
  maxCaseMs: number;
  slowestCase: string;
  peakRssMb: number;
  loaded: number;
  refused: number;
  /** Refusals by the start of their message after the file name (the reader's distinct checks). */
  reasons: Record<string, number>;
  forbiddenGlobals: number;
  perKind: Record<Kind, number>;
  /** Calls of the trapped functions (exec, spawn, file writes, eval) while cases ran. */
  trapped: string[];
  /** Cases that ended in anything but a one-line CheckpointError or a valid state_dict. */
  bugs: string[];
  /** The unmutated file's tensor count (the harness's own check). */
  baselineTensors: number;
}

const [dir, seedArg, fromArg, casesArg] = process.argv.slice(2);
const seed = Number(seedArg);
const from = Number(fromArg);
const cases = Number(casesArg);
const layout = JSON.parse(fs.readFileSync(path.join(dir, "layout.json"), "utf8")) as Layout;
const original = new Uint8Array(fs.readFileSync(path.join(dir, layout.file)));
const work = Uint8Array.from(original);
const mutator = new Mutator(layout, original);
const label = "fuzzed.pth";
const progress = fs.openSync(path.join(dir, "current.txt"), "w");
const writeSync = fs.writeSync;
const ftruncateSync = fs.ftruncateSync;

function validState(state: StateDict): string | null {
  for (const [key, t] of state) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(numel) || t.data.length !== numel) return `tensor ${key}: ${t.data.length} values for shape [${t.shape}]`;
  }
  return null;
}

/** Replaces fn on obj by a counting trap while `run` runs. */
function trapped<T>(run: () => T, log: string[]): T {
  // The modules' own objects (what every importer reads through), not this file's import bindings.
  const targets: Array<[Record<string, unknown>, string[], string]> = [
    [require("child_process") as Record<string, unknown>, ["exec", "execSync", "execFile", "execFileSync", "spawn", "spawnSync", "fork"], "child_process"],
    [require("fs") as Record<string, unknown>, ["writeFileSync", "appendFileSync", "openSync", "unlinkSync", "rmSync", "renameSync",
      "mkdirSync", "symlinkSync", "writeFile", "open", "createWriteStream"], "fs"],
    [globalThis as unknown as Record<string, unknown>, ["eval", "Function"], "global"],
  ];
  const saved: Array<[Record<string, unknown>, string, unknown]> = [];
  for (const [obj, names, module] of targets) {
    for (const name of names) {
      saved.push([obj, name, obj[name]]);
      try {
        obj[name] = (..._args: unknown[]): never => {
          log.push(`${module}.${name}`);
          throw new Error(`trapped ${module}.${name}`);
        };
      } catch {
        // a read-only export: nothing can call a replacement, nor do we need one
      }
    }
  }
  try {
    return run();
  } finally {
    for (const [obj, name, value] of saved) {
      try {
        obj[name] = value;
      } catch {
        // see above
      }
    }
  }
}

function main(): FuzzSummary {
  const s: FuzzSummary = {
    cases, seconds: 0, maxCaseMs: 0, slowestCase: "", peakRssMb: 0, loaded: 0, refused: 0, reasons: {}, forbiddenGlobals: 0,
    perKind: Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>, trapped: [], bugs: [],
    baselineTensors: parseCheckpoint(original, label).size,
  };
  const start = performance.now();
  for (let i = from; i < from + cases; i++) {
    const m = mutator.mutation(seed, i);
    const { bytes, undo, note } = applyMutation(work, layout, m);
    const what = `case ${i} (seed ${seed}): ${m.description}${note}`;
    ftruncateSync(progress, 0);
    writeSync(progress, what, 0);
    for (const k of new Set(m.kinds)) s.perKind[k]++;
    const t = performance.now();
    try {
      const state = trapped(() => parseCheckpoint(bytes, label), s.trapped);
      const problem = validState(state);
      if (problem) s.bugs.push(`${what}: loaded an inconsistent state_dict: ${problem}`);
      s.loaded++;
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      if (!(e instanceof CheckpointError) || !(e instanceof UserError) || !message.startsWith(`checkpoint ${label}: `) || /[\n\r\u2028\u2029]/.test(message)) {
        s.bugs.push(`${what}: ${e instanceof Error ? e.stack : message}`);
      } else {
        s.refused++;
        const reason = message.slice(label.length + 12).replace(/"[^"]*"/g, "\"\"").replace(/[0-9]+/g, "N").slice(0, 60);
        s.reasons[reason] = (s.reasons[reason] ?? 0) + 1;
        if (message.includes("forbidden global")) s.forbiddenGlobals++;
      }
    }
    const ms = performance.now() - t;
    if (ms > s.maxCaseMs) {
      s.maxCaseMs = ms;
      s.slowestCase = what;
    }
    undo();
  }
  s.seconds = (performance.now() - start) / 1000;
  s.peakRssMb = process.resourceUsage().maxRSS / 1024;
  return s;
}

console.log(JSON.stringify(main()));
fs.closeSync(progress);
