// Diverged, incomplete and missing units are left out of every aggregate, and every table, figure
// and conclusion that leaves them out says how many and why. The diverged unit is a stored
// "failed" status, read back through the results store as the notebooks read it.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { exclusionNote, selectUnits } from "../src/experiment/stats/selection";
import { summarize } from "../src/experiment/stats/grouping";
import { summaryTables } from "../src/experiment/stats/tables";
import { conclusionParts, partFindings } from "../src/experiment/conclusions";
import { runSummaryText } from "../src/experiment/run_summary";
import { loadResults, storeFor } from "../src/experiment/grid";
import type { EpochRecord } from "../src/experiment/records";
import { makeConfig } from "../src/config";
import { learningCurves, pairedDifferenceFigure } from "../src/viz/figures";

function rec(arm: EpochRecord["arm"], trial: number, epoch: number, loss: number): EpochRecord {
  return { backbone: "scratch", arm, trial, epoch, loss, roc_auc: 0.5 + 0.1 * epoch + 0.01 * trial, output_bias_value: 0, train_loss: epoch === 0 ? null : loss,
    wall_s: 1, images_per_s: null, seed: trial, dataset: "synthetic", backend: "js" };
}

test("selectUnits: failed units are diverged, shorter ones incomplete, absent ones missing; the note counts each", () => {
  const records: EpochRecord[] = [];
  for (const arm of ["vanilla", "positive_rate"] as const) {
    for (let trial = 0; trial < 3; trial++) {
      // vanilla trial 2 diverged during epoch 2; positive_rate trial 1 was interrupted after epoch 1.
      const epochs = (arm === "vanilla" && trial === 2) || (arm === "positive_rate" && trial === 1) ? 2 : 3;
      for (let epoch = 0; epoch < epochs; epoch++) records.push(rec(arm, trial, epoch, 0.5 - 0.1 * epoch + 0.01 * trial));
    }
  }
  const failed = [{ backbone: "scratch" as const, arm: "vanilla" as const, trial: 2 }];
  const selection = selectUnits({ records, failed, trials: 4 });
  assert.deepEqual(selection.tallies.map((t) => [t.arm, t.expected, t.included, t.diverged, t.incomplete, t.missing]), [
    ["vanilla", 4, 2, 1, 0, 1],
    ["positive_rate", 4, 2, 0, 1, 1],
  ]);
  assert.deepEqual([...new Set(selection.records.map((r) => `${r.arm} ${r.trial}`))], ["vanilla 0", "vanilla 1", "positive_rate 0", "positive_rate 2"]);
  assert.equal(exclusionNote(selection.tallies, { backbone: "scratch" }),
    "Vanilla: n = 2 of 4 trials; 1 diverged, 1 not run (excluded). Positive rate: n = 2 of 4 trials; 1 with fewer epochs than the others, 1 not run (excluded).");
  assert.equal(exclusionNote(selection.tallies, { backbone: "imagenet" }), "");
  // Without the failed status, the diverged unit still holds fewer epochs: incomplete, left out all the same.
  const unknown = selectUnits({ records });
  assert.deepEqual(unknown.tallies.map((t) => [t.arm, t.expected, t.included, t.incomplete]), [["vanilla", null, 2, 1], ["positive_rate", null, 2, 1]]);
  assert.equal(exclusionNote(unknown.tallies, { backbone: "scratch" }),
    "Vanilla: n = 2 of 3 trials; 1 with fewer epochs than the others (excluded). Positive rate: n = 2 of 3 trials; 1 with fewer epochs than the others (excluded).");
  assert.equal(exclusionNote(selectUnits({ records: records.filter((r) => r.trial === 0) }).tallies, { backbone: "scratch" }), "", "nothing left out: no note");
});

test("a diverged unit stored as failed is left out of the means, and the figure, tables, conclusions and CLI summary say so", (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "bias-selection-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const config = makeConfig("smoke", { backbones: ["scratch"], trials: 3, epochs: 2, data: { source: "synthetic", dir: path.join(root, "data") } });
  const { store } = storeFor(config, root);
  store.init({ written: "test/selection.test.ts" });
  // Trial 2's vanilla arm diverged after epoch 1 with a huge loss: pooled, it would drag the mean up.
  const loss = (arm: string, trial: number, epoch: number): number => (arm === "vanilla" && trial === 2 && epoch === 1 ? 40 : [0.69, 0.4, 0.3][epoch] - (arm === "vanilla" ? 0 : 0.05) + 0.01 * trial);
  for (const arm of ["vanilla", "positive_rate"] as const) {
    for (let trial = 0; trial < 3; trial++) {
      const unit = { backbone: "scratch" as const, arm, trial };
      const diverged = arm === "vanilla" && trial === 2;
      for (let epoch = 0; epoch <= (diverged ? 1 : 2); epoch++) store.appendEpoch(unit, rec(arm, trial, epoch, loss(arm, trial, epoch)), null, null);
      store.setStatus(unit, diverged ? "failed" : "done", diverged ? "training diverged: loss is NaN at epoch 2, step 3 (test)" : null);
    }
  }
  const result = loadResults(config, root);
  assert.equal(result.failed.length, 1);
  const options = { backbone: "scratch" as const, dataset: result.dataset, positiveRate: 0.1, failed: result.failed.map((f) => f.unit), trials: 3 };
  const fig = learningCurves(result.records, options);
  const vanillaBce = fig.data.find((d) => d.name === "Vanilla" && d.yaxis === "y") as { y: number[] };
  // Epoch 1 over trials 0 and 1 only: (0.40 + 0.41) / 2, not (0.40 + 0.41 + 40) / 3.
  assert.ok(Math.abs(vanillaBce.y[1] - 0.405) < 1e-12, `vanilla epoch 1 mean ${vanillaBce.y[1]}`);
  assert.equal(vanillaBce.y.length, 3);
  const layout = fig.layout as { annotations: Array<{ text: string }>; title: { text: string } };
  const note = layout.annotations.map((a) => a.text).join("\n");
  assert.match(note, /Vanilla: n = 2 of 3 trials; 1 diverged \(excluded\)\. Positive rate: n = 3 of 3 trials\./);
  assert.match(layout.title.text, /Vanilla 2 trials, Positive rate 3 trials/);
  const diff = pairedDifferenceFigure(result.records, options).layout as { annotations: Array<{ text: string }>; title: { text: string } };
  assert.match(diff.annotations.map((a) => a.text).join("\n"), /1 diverged \(excluded\)/);
  assert.match(diff.title.text, /2 paired trials/);

  const tables = summaryTables(result, ["loss"]);
  assert.equal(tables.length, 2);
  for (const { caption } of tables) assert.match(caption, /Vanilla: n = 2 of 3 trials; 1 diverged \(excluded\)/);
  const row = summarize(result.records.filter((r) => !(r.arm === "vanilla" && r.trial === 2)), "loss").find((r) => r.arm === "vanilla" && r.epoch === 1);
  assert.deepEqual((tables[0].table.column("mean").values as number[])[1], row?.mean);

  const findings = partFindings(conclusionParts({ scratch: result })[0], 0.1);
  assert.match(findings[0], /units left out of every number below\.\*\* Vanilla: n = 2 of 3 trials; 1 diverged \(excluded\)/);
  assert.match(runSummaryText(result), /scratch  left out of the numbers below: Vanilla: n = 2 of 3 trials; 1 diverged \(excluded\)/);
});
