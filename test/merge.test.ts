// `results merge SRC... DEST`: two stores each holding half the units merge into the table of one
// store that trained them all; a second merge of the same sources changes nothing; a store of
// another config or numerics version, or a unit held with other numbers, is refused with one line
// and nothing changes; an unfinished unit in DEST is completed from a source.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { loadResults, runExperiment, storeFor } from "../src/experiment/grid";
import { runSummaryText } from "../src/experiment/run_summary";
import { parseUnitName, unitName } from "../src/experiment/store";
import { ARMS, BACKBONES } from "../src/config";
import { configOf, smallGrid, storeRows } from "./helpers/grid_runs";
import { ROOT } from "./helpers/worker_logs";

/** Path -> content and mtime of every file under `dir` (empty when it does not exist). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[path.relative(dir, p)] = `${fs.statSync(p).mtimeMs} ${fs.readFileSync(p, "utf8")}`;
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}

test("unit folder names read back for every backbone and arm (the third arm's units merge too); other names are not units", () => {
  for (const backbone of BACKBONES) for (const arm of ARMS) for (const trial of [0, 12]) assert.deepEqual(parseUnitName(unitName({ backbone, arm, trial })), { backbone, arm, trial });
  for (const name of ["scratch__zero__trial-0", "other__vanilla__trial-0", "scratch__vanilla__trial-x", "scratch__vanilla__trial-0.tmp-12", "scratch__vanilla__trial-0.tmp-12.h0123abcd", "workers"]) assert.equal(parseUnitName(name), null, name);
});

function merge(...paths: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli.ts"), "results", "merge", ...paths], { cwd: ROOT, encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A refused merge: exit 2, one `error: results merge: ...` line matching `pattern`, DEST unchanged. */
function refused(dest: string, pattern: RegExp, ...sources: string[]): void {
  const before = snapshot(dest);
  const r = merge(...sources, dest);
  assert.equal(r.status, 2, r.stdout + r.stderr);
  assert.equal(r.stdout, "");
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^error: results merge: .*; nothing was changed$/);
  assert.match(lines[0], pattern);
  assert.deepEqual(snapshot(dest), before, "a refused merge changes nothing");
}

function copyStore(from: string, to: string, edit?: (dir: string) => void): string {
  fs.cpSync(from, to, { recursive: true });
  edit?.(to);
  return to;
}

test("two stores holding half the units each merge into the table of one store holding all; a second merge does nothing", async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bias-merge-"));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const overrides = smallGrid(path.join(tmp, "data"), { trials: 2, epochs: 2 });
  const all = configOf(overrides);
  // The arms select units only (not part of the results key): the halves share the config's store name.
  await runExperiment(all, { resultsDir: path.join(tmp, "one") });
  await runExperiment(configOf({ ...overrides, arms: ["vanilla"] }), { resultsDir: path.join(tmp, "a") });
  await runExperiment(configOf({ ...overrides, arms: ["positive_rate"] }), { resultsDir: path.join(tmp, "b") });
  const hash = storeFor(all, tmp).store.hash;
  const [one, a, b, merged] = ["one", "a", "b", "merged"].map((d) => path.join(tmp, d, hash));

  const r = merge(a, b, merged);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), `merged 4 unit(s) into ${merged} from ${a} (2), ${b} (2); 0 already there`);
  const table = (root: string): string => runSummaryText(loadResults(all, root)).replace(path.join(root, hash), "<store>");
  assert.deepEqual(storeRows(all, path.join(tmp, "merged")), storeRows(all, path.join(tmp, "one")));
  assert.deepEqual(loadResults(all, path.join(tmp, "merged")).steps, loadResults(all, path.join(tmp, "one")).steps);
  assert.equal(table(path.join(tmp, "merged")), table(path.join(tmp, "one")));
  assert.ok(!fs.readdirSync(merged, { recursive: true }).some((f) => /checkpoint-|lock|\.tmp-/.test(String(f))), "records only: no checkpoint, lock or temporary file");

  const before = snapshot(merged);
  const again = merge(a, b, merged);
  assert.equal(again.status, 0, again.stderr);
  assert.equal(again.stdout.trim(), `nothing to merge: ${merged} already holds every finished unit of ${a}, ${b} (4 unit(s))`);
  assert.deepEqual(snapshot(merged), before);

  // Results roots merge store by store (by folder name).
  const roots = merge(path.join(tmp, "a"), path.join(tmp, "b"), path.join(tmp, "roots"));
  assert.equal(roots.status, 0, roots.stderr);
  assert.deepEqual(storeRows(all, path.join(tmp, "roots")), storeRows(all, path.join(tmp, "one")));

  // A unit DEST holds unfinished (killed after epoch 1, no live lock) is completed from a source.
  const partial = copyStore(one, path.join(tmp, "partial", hash), (dir) => {
    const unit = path.join(dir, "scratch__vanilla__trial-1");
    const rows = fs.readFileSync(path.join(unit, "epochs.jsonl"), "utf8").trim().split("\n");
    fs.writeFileSync(path.join(unit, "epochs.jsonl"), rows.slice(0, 2).join("\n") + "\n");
    fs.writeFileSync(path.join(unit, "status.json"), JSON.stringify({ ...JSON.parse(fs.readFileSync(path.join(unit, "status.json"), "utf8")), state: "running" }));
  });
  const completed = merge(a, partial);
  assert.equal(completed.status, 0, completed.stderr);
  assert.match(completed.stdout, /^merged 1 unit\(s\) into .* \(1\); 1 already there/);
  assert.deepEqual(storeRows(all, path.join(tmp, "partial")), storeRows(all, path.join(tmp, "one")));

  // Refusals, each one line, DEST unchanged: another config, another numerics version, other numbers.
  const editJson = (file: string, change: (o: Record<string, unknown>) => void): void => {
    const o = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
    change(o);
    fs.writeFileSync(file, JSON.stringify(o));
  };
  const otherLr = copyStore(a, path.join(tmp, "other-lr", hash), (dir) => editJson(path.join(dir, "config.json"), (o) => (o.lr = 0.01)));
  refused(merged, /hold different configs \(lr 0\.01 vs 0\.05\); merge stores of one config only/, otherLr);
  const otherCode = copyStore(a, path.join(tmp, "other-code", hash), (dir) => editJson(path.join(dir, "config.json"), (o) => (o.numericsVersion = 999)));
  refused(merged, /holds results of numerics version 999, .* of version \d+; results of different code never share a store/, otherCode);
  const tampered = copyStore(b, path.join(tmp, "tampered", hash), (dir) => {
    const file = path.join(dir, "scratch__positive_rate__trial-0", "epochs.jsonl");
    const rows = fs.readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
    rows[1].loss += 0.001;
    fs.writeFileSync(file, rows.map((x) => JSON.stringify(x)).join("\n") + "\n");
  });
  refused(merged, /scratch\/positive_rate trial 0 differs between .*tampered.* and .*merged.* \(epoch 1 loss [\d.]+ vs [\d.]+\); they were trained differently/, tampered);
  // Atomic: the sources' good units are not merged either when one of them conflicts, and a new DEST is not created.
  refused(path.join(tmp, "fresh", hash), /differs between/, b, tampered);
  assert.ok(!fs.existsSync(path.join(tmp, "fresh")));
});
