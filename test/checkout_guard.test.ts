// The guard `make test` runs the suite under (test/run_suite.ts): it must notice any write into
// reports/, results/, data/ or weights/, put its sentinels in and take them out again, and leave a
// results folder a live run is writing alone. Checked on a stand-in checkout, then end to end: the
// runner itself, around a test file that writes into its checkout, must fail.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { checkoutChanges, GUARDED_FOLDERS, removeSentinels, SENTINEL, snapshotCheckout } from "./helpers/checkout_guard";

const ROOT = path.resolve(__dirname, "..");

function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      out.push(path.join(rel, e.name));
      if (e.isDirectory()) walk(path.join(rel, e.name));
    }
  };
  walk("");
  return out.sort();
}

test("the checkout guard detects every write, adds and removes its sentinels, skips live runs", (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "bias-guard-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.mkdirSync(path.join(root, "reports"));
  fs.writeFileSync(path.join(root, "reports", "learning_curves_scratch.png"), "the user's figure");
  fs.mkdirSync(path.join(root, "data", "cifar-10-batches-bin"), { recursive: true });
  fs.writeFileSync(path.join(root, "data", "cifar-10-batches-bin", "data_batch_1.bin"), Buffer.alloc(3073, 7));
  fs.mkdirSync(path.join(root, "src"));
  const original = listing(root);

  const snap = snapshotCheckout(root);
  for (const folder of GUARDED_FOLDERS) assert.ok(fs.existsSync(path.join(root, folder, SENTINEL)), `${folder}: sentinel`);
  assert.deepEqual(checkoutChanges(snap), [], "nothing changed yet");

  // The same bytes rewritten are no change; other bytes of the same size are.
  fs.writeFileSync(path.join(root, "reports", "learning_curves_scratch.png"), "the user's figure");
  assert.deepEqual(checkoutChanges(snap), []);
  fs.writeFileSync(path.join(root, "reports", "learning_curves_scratch.png"), "the test's figure");
  fs.writeFileSync(path.join(root, "data", "cifar-10-batches-bin", "data_batch_1.bin"), Buffer.alloc(3073, 8));
  fs.mkdirSync(path.join(root, "data", "synthetic"));
  fs.rmSync(path.join(root, "weights", SENTINEL));
  fs.mkdirSync(path.join(root, "results", "abc123"), { recursive: true });
  fs.writeFileSync(path.join(root, "src", "outside.ts"), "not guarded");
  assert.deepEqual(checkoutChanges(snap).sort(), [
    "added: data/synthetic",
    "added: results/abc123",
    "changed: data/cifar-10-batches-bin/data_batch_1.bin (file -> file, other bytes)",
    "changed: reports/learning_curves_scratch.png (file -> file, other bytes)",
    `removed: weights/${SENTINEL}`,
  ]);

  // A unit folder a live run holds is the user's run writing: not compared.
  const unit = path.join(root, "results", "abc123", "scratch__vanilla__trial-0");
  fs.mkdirSync(unit);
  fs.writeFileSync(path.join(unit, "lock"), JSON.stringify({ pid: process.pid, host: os.hostname(), started: "now", token: "t" }));
  fs.writeFileSync(path.join(unit, "epochs.jsonl"), "{}\n");
  const snap2 = snapshotCheckout(root);
  fs.writeFileSync(path.join(unit, "epochs.jsonl"), "{}\n{}\n");
  assert.deepEqual(checkoutChanges(snap2), []);
  fs.rmSync(path.join(root, "results", "abc123"), { recursive: true });

  fs.rmSync(path.join(root, "data", "synthetic"), { recursive: true });
  fs.rmSync(path.join(root, "src", "outside.ts"));
  removeSentinels(snap2);
  removeSentinels(snap);
  assert.deepEqual(listing(root), original, "the sentinels and the folders made for them are gone");
});

test("the suite runner fails when a test writes into the checkout's results/, and cleans up", (t) => {
  // A stand-in checkout holding the runner, its helpers and one test file that writes into results/.
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "bias-guard-run-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  for (const dir of ["test", "src"]) fs.cpSync(path.join(ROOT, dir), path.join(root, dir), { recursive: true, filter: (f) => !f.endsWith(".test.ts") });
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(root, "node_modules"));
  fs.copyFileSync(path.join(ROOT, "package.json"), path.join(root, "package.json"));
  fs.copyFileSync(path.join(ROOT, "tsconfig.json"), path.join(root, "tsconfig.json"));
  fs.writeFileSync(path.join(root, "test", "writes.test.ts"), `import { test } from "node:test";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
test("writes where it must not", () => {
  fs.mkdirSync(path.join(__dirname, "..", "results", "deadbeef"), { recursive: true });
  fs.mkdtempSync(path.join(os.tmpdir(), "bias-forgotten-"));
});
`);
  const r = spawnSync(process.execPath, ["--import", "tsx", path.join(root, "test", "run_suite.ts")], { cwd: root, encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 1, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /the tests changed the checkout's 1 file\(s\) or folder\(s\) they must leave alone:\n {2}added: results\/deadbeef/);
  assert.match(r.stderr, /tests left 1 temporary folder\(s\) behind .*: bias-forgotten-/);
  // The sentinels are gone; only what the test wrote stays (results/deadbeef).
  for (const folder of GUARDED_FOLDERS) assert.equal(fs.existsSync(path.join(root, folder, SENTINEL)), false, folder);
  assert.deepEqual(fs.readdirSync(path.join(root, "results")), ["deadbeef"]);
  assert.equal(fs.existsSync(path.join(root, "reports")), false, "a folder made for a sentinel is removed");
});
