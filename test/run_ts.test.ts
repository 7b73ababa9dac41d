// tools/run-ts.sh, the compiled runner of `make run`, `make doctor`, `make bench` and the Slurm and
// Kubernetes workers: an entry point compiled into one file outside the repository still finds the
// repository (its engines, its packages) and runs what the sources say; bad calls get one line and
// exit 2, with nothing written. (test/workers.test.ts runs the CLI and its workers compiled.)
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { DoctorReport } from "../src/engine/doctor";
import { ROOT } from "./helpers/fake_gpu";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bias-run-ts-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function runTs(dist: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync("bash", [path.join(ROOT, "tools/run-ts.sh"), ...args], { cwd: ROOT, encoding: "utf8", env: { ...process.env, ...env, BIAS_INIT_DIST_DIR: dist } });
}

test("the doctor compiled into a folder outside the repository reports what the doctor under tsx reports", () => {
  const dist = path.join(tmp, "dist");
  const compiled = runTs(dist, ["src/engine/doctor_main.ts", "--json"]);
  assert.equal(compiled.status, 0, compiled.stderr);
  assert.ok(fs.existsSync(path.join(dist, "src/engine/doctor_main.cjs")));
  assert.deepEqual(fs.readdirSync(path.join(dist, "src/engine")), ["doctor_main.cjs"], "no temporary file left beside it");
  const viaTsx = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "src/engine/doctor_main.ts"), "--json"], { cwd: ROOT, encoding: "utf8" });
  assert.equal(viaTsx.status, 0, viaTsx.stderr);
  const [a, b] = [compiled, viaTsx].map((r) => JSON.parse(r.stdout) as DoctorReport);
  // The repository's folders (util/runner.ts PROJECT_ROOT), not the compiled file's.
  assert.equal(a.system.disk[0].path, path.join(ROOT, ".native"));
  assert.deepEqual(a.system.disk.map((d) => d.path), b.system.disk.map((d) => d.path));
  assert.deepEqual(a.engine.active, b.engine.active, "the same engine loads (the native build is found from the compiled file)");
  assert.deepEqual(a.next, b.next);
});

test("bad calls: one line naming the fix, exit 2, nothing compiled", () => {
  const dist = path.join(tmp, "dist-bad");
  const cases: Array<{ args: string[]; env?: NodeJS.ProcessEnv; pattern: RegExp }> = [
    { args: [], pattern: /^run-ts\.sh: usage: bash tools\/run-ts\.sh <entry point \.ts/ },
    { args: ["README.md"], pattern: /^run-ts\.sh: usage: / },
    { args: ["src/no_such_entry.ts"], pattern: /^run-ts\.sh: .*src\/no_such_entry\.ts does not exist; name an entry point such as src\/cli\.ts$/ },
  ];
  for (const c of cases) {
    const r = runTs(dist, c.args, c.env);
    assert.equal(r.status, 2, `${c.args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr.trim(), c.pattern);
    assert.equal(r.stdout, "");
  }
  assert.equal(fs.existsSync(dist), false);
});
