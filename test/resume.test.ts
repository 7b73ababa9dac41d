// Killing the CLI mid-epoch and running it again must end with exactly the rows of an
// uninterrupted run: nothing lost but the epoch in flight, nothing different after the resume.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { leftovers } from "./helpers/grid_runs";

const ROOT = path.resolve(__dirname, "..");

function cliArgs(dataDir: string, resultsDir: string): string[] {
  return ["--import", "tsx", path.join(ROOT, "src/cli.ts"), "--preset", "smoke", "--data", "synthetic", "--data-dir", dataDir,
    "--results", resultsDir, "--backbones", "scratch", "--arms", "positive_rate", "--trials", "1", "--epochs", "3", "--train-limit", "640", "--test-limit", "200"];
}

function epochsFile(resultsDir: string): string | null {
  if (!fs.existsSync(resultsDir)) return null;
  for (const hash of fs.readdirSync(resultsDir)) {
    const f = path.join(resultsDir, hash, "scratch__positive_rate__trial-0", "epochs.jsonl");
    if (fs.existsSync(f)) return f;
  }
  return null;
}

function rows(file: string): Array<Record<string, unknown>> {
  // Timing columns differ between runs by nature; every number the experiment reports must not.
  return fs.readFileSync(file, "utf8").trim().split("\n").map((l) => {
    const { wall_s: _w, images_per_s: _i, ...rest } = JSON.parse(l) as Record<string, unknown>;
    return rest;
  });
}

test("a CLI run killed mid-epoch resumes and ends with the rows of an uninterrupted run", async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bias-resume-"));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const dataDir = path.join(tmp, "data");
  const env = { ...process.env };

  const straight = spawnSync(process.execPath, cliArgs(dataDir, path.join(tmp, "straight")), { cwd: ROOT, env, encoding: "utf8" });
  assert.equal(straight.status, 0, straight.stderr);
  assert.doesNotMatch(straight.stdout, /--workers/, "one unit: no workers to suggest");
  const expected = rows(epochsFile(path.join(tmp, "straight")) as string);
  assert.deepEqual(expected.map((r) => r.epoch), [0, 1, 2, 3]);

  const resumedDir = path.join(tmp, "resumed");
  const child = spawn(process.execPath, cliArgs(dataDir, resumedDir), { cwd: ROOT, env, stdio: "ignore" });
  // Wait for epoch 1 to be stored, then let epoch 2 get under way and kill without warning: 40% of
  // an epoch later, an epoch timed as the gap between the stores of epochs 0 and 1 (a fixed delay
  // outlived the whole run once the engine got faster).
  await new Promise<void>((resolve, reject) => {
    let epoch0At: number | null = null;
    const timer = setInterval(() => {
      const f = epochsFile(resumedDir);
      const seen = f ? rows(f).map((r) => r.epoch) : [];
      if (epoch0At === null && seen.includes(0)) epoch0At = Date.now();
      if (epoch0At !== null && seen.includes(1)) {
        clearInterval(timer);
        setTimeout(() => {
          child.kill("SIGKILL");
          resolve();
        }, 0.4 * (Date.now() - epoch0At));
      }
    }, 20);
    child.on("exit", () => {
      clearInterval(timer);
      reject(new Error("the run finished before it could be killed"));
    });
  });
  await new Promise((r) => child.on("close", r));
  const partial = rows(epochsFile(resumedDir) as string);
  assert.ok(partial.length >= 2 && partial.length < 4, `killed run holds epochs ${partial.map((r) => r.epoch).join(",")}`);

  const resumed = spawnSync(process.execPath, cliArgs(dataDir, resumedDir), { cwd: ROOT, env, encoding: "utf8" });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.deepEqual(rows(epochsFile(resumedDir) as string), expected);
  // Checkpoints only exist to resume: a finished unit leaves none behind, nor the temporary file
  // or lock of the killed run (the kill may land in the middle of a checkpoint write).
  assert.deepEqual(leftovers(resumedDir), []);
});
