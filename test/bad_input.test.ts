// Bad input gets one clear error naming what is wrong, and nothing is written to results/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { makeConfig, ConfigError } from "../src/config";
import { runExperiment } from "../src/experiment/grid";
import { writeSyntheticCifar10 } from "../src/data/synthetic";

const ROOT = path.resolve(__dirname, "..");

function tempDirs(): { data: string; results: string } {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bias-bad-"));
  return { data: path.join(tmp, "data"), results: path.join(tmp, "results") };
}

/** A CIFAR-10 folder in the official layout, then damaged by `damage`. */
function cifarWith(damage: (batchDir: string) => void): { data: string; results: string } {
  const dirs = tempDirs();
  const batchDir = writeSyntheticCifar10(dirs.data, { perTrainBatch: 50, testCount: 50, seed: 1 });
  damage(batchDir);
  return dirs;
}

async function expectRunError(dirs: { data: string; results: string }, pattern: RegExp, overrides = {}): Promise<void> {
  const config = makeConfig("smoke", { data: { source: "cifar10", dir: dirs.data }, backbones: ["scratch"], trials: 1, epochs: 1, ...overrides });
  await assert.rejects(runExperiment(config, { resultsDir: dirs.results }), pattern);
  assert.equal(fs.existsSync(dirs.results), false, "nothing was written to results/");
}

test("a truncated batch file is named, and nothing is written", async () => {
  const dirs = cifarWith((d) => {
    const f = path.join(d, "data_batch_1.bin");
    fs.truncateSync(f, fs.statSync(f).size - 100);
  });
  await expectRunError(dirs, /data_batch_1\.bin.*(truncated|multiple of 3073)/s);
});

test("a label outside 0..9 is named with its record, and nothing is written", async () => {
  const dirs = cifarWith((d) => {
    const f = path.join(d, "test_batch.bin");
    const bytes = fs.readFileSync(f);
    bytes[3073 * 2] = 10;
    fs.writeFileSync(f, bytes);
  });
  await expectRunError(dirs, /test_batch\.bin.*label/s);
});

test("a missing batch file is named", async () => {
  const dirs = cifarWith((d) => fs.rmSync(path.join(d, "data_batch_3.bin")));
  await expectRunError(dirs, /data_batch_3\.bin/);
});

test("a missing data folder says what to run", async () => {
  await expectRunError(tempDirs(), /make data/);
});

test("an unknown class name lists the valid ones", async () => {
  const dirs = cifarWith(() => undefined);
  await expectRunError(dirs, /toad.*frog/s, { data: { source: "cifar10", dir: dirs.data, positiveClass: "toad" } });
});

test("out-of-range config values name the field", () => {
  assert.throws(() => makeConfig("smoke", { lr: -1 }), (e: unknown) => e instanceof ConfigError && /config\.lr/.test(e.message));
  assert.throws(() => makeConfig("smoke", { trials: 0 }), /config\.trials/);
  assert.throws(() => makeConfig("smoke", { epochs: 1.5 }), /config\.epochs/);
  assert.throws(() => makeConfig("smoke", { momentum: 1 }), /config\.momentum/);
  assert.throws(() => makeConfig("smoke", { input: { resize: null, crop: 64 } }), /config\.input\.crop/);
  assert.throws(() => makeConfig("smoke", { arms: ["vanila" as never] }), /config\.arms/);
  assert.throws(() => makeConfig("nope" as never), /unknown preset/);
});

test("the CLI prints one clear line and exits 2 on bad input, writing nothing", () => {
  const dirs = tempDirs();
  const run = (args: string[]) => spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli.ts"), "--data-dir", dirs.data, "--results", dirs.results, ...args],
    { cwd: ROOT, env: process.env, encoding: "utf8" });
  for (const [args, pattern] of [
    [["--preset", "smoke", "--trials", "0"], /config\.trials/],
    [["--preset", "smoke", "--lr", "abc"], /--lr: "abc" is not a number/],
    [["--preset", "smoke", "--data", "cifar10"], /make data/],
    [["--preset", "huge"], /unknown preset/],
  ] as Array<[string[], RegExp]>) {
    const r = run(args);
    assert.equal(r.status, 2, `${args.join(" ")}: exit ${r.status}\n${r.stderr}`);
    const errorLines = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
    assert.equal(errorLines.length, 1, r.stderr);
    assert.match(r.stderr, pattern);
  }
  assert.equal(fs.existsSync(dirs.results), false);
});
