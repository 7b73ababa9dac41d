// Time to read a B1 .pth (31 MB) with our own reader and load it into the TS EfficientNet-B1
// (target: under 5 s on 2 cores). A benchmark, not a test: numbers vary with machine load.
//   node --import tsx bench/load_checkpoint.ts [PATH.pth] [--repeat 3]
// Without PATH it uses weights/efficientnet_b1-c27df63c.pth when present, else writes a randomly
// initialized torchvision B1 state_dict with .venv's torch (same size and layout) into a temp dir.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseArgs } from "util";
import { backendLine, initBackend, PROJECT_ROOT } from "../src/engine/backend";
import { readCheckpoint } from "../src/model/torch_pth";
import { buildEfficientNet } from "../src/model/efficientnet";
import { DEFAULT_WEIGHTS_DIR, IMAGENET_WEIGHTS, loadStateDict } from "../src/model/pretrained";
import { makeRng } from "../src/rng";

function randomB1Checkpoint(): string {
  const python = path.join(PROJECT_ROOT, ".venv", "bin", "python");
  if (!fs.existsSync(python)) {
    throw new Error(`no checkpoint given, none in ${DEFAULT_WEIGHTS_DIR}/, and no ${python} to write one (make setup, or make weights)`);
  }
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "bench-ckpt-")), "b1_random.pth");
  const script = [
    "import sys, torch",
    `sys.path.insert(0, ${JSON.stringify(path.join(PROJECT_ROOT, "tools"))})`,
    "from torchvision_compat import import_torchvision",
    "import_torchvision()",
    "from torchvision.models import efficientnet_b1",
    "torch.manual_seed(0)",
    `torch.save(efficientnet_b1().state_dict(), ${JSON.stringify(file)})`,
  ].join("\n");
  execFileSync(python, ["-c", script], { stdio: "inherit" });
  return file;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ options: { repeat: { type: "string", default: "3" } }, allowPositionals: true });
  const official = path.join(PROJECT_ROOT, DEFAULT_WEIGHTS_DIR, IMAGENET_WEIGHTS.b1?.file ?? "");
  const file = positionals[0] ?? (fs.existsSync(official) ? official : randomB1Checkpoint());
  // The random checkpoint's temporary folder goes when the benchmark ends, however it ends.
  if (file.startsWith(path.join(os.tmpdir(), "bench-ckpt-"))) process.on("exit", () => fs.rmSync(path.dirname(file), { recursive: true, force: true }));
  console.log(backendLine(await initBackend()));
  const sizeMb = fs.statSync(file).size / 1024 / 1024;

  let t = performance.now();
  const model = buildEfficientNet("b1", makeRng("bench-load"));
  console.log(`build B1 (random init, not part of loading): ${((performance.now() - t) / 1000).toFixed(2)} s`);
  for (let i = 0; i < Number(values.repeat); i++) {
    t = performance.now();
    const state = readCheckpoint(file);
    const read = (performance.now() - t) / 1000;
    t = performance.now();
    loadStateDict(model, state, file);
    const load = (performance.now() - t) / 1000;
    console.log(`${path.basename(file)} (${sizeMb.toFixed(1)} MB, ${state.size} tensors): read ${read.toFixed(2)} s + ` +
      `map into B1 ${load.toFixed(2)} s = ${(read + load).toFixed(2)} s (target < 5 s)`);
  }
  model.dispose();
}

main().catch((e) => {
  console.error(`error: ${(e as Error).message}`);
  process.exit(1);
});
