// `make test`: the whole suite (node --test test/*.test.ts), guarded.
//   node --import tsx test/run_suite.ts [test files...]      (default: every test/*.test.ts)
// Before the tests, every file under the checkout's reports/, results/, data/, weights/ and dist/ is
// recorded, with a sentinel file added to each (test/helpers/checkout_guard.ts); after them, any
// byte added, changed or removed there fails the run, listed. The tests get a temporary folder of
// their own as TMPDIR (os.tmpdir()); a `bias-*` entry a test leaves in it fails the run too, and
// the folder is removed, so nothing of the suite stays in the system's temporary folder.
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { checkoutChanges, removeSentinels, snapshotCheckout } from "./helpers/checkout_guard";

const ROOT = path.resolve(__dirname, "..");
const DIST = "compiled-entry-points";

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const files = args.length > 0 ? args : fs.readdirSync(__dirname).filter((f) => f.endsWith(".test.ts")).sort().map((f) => path.join("test", f));
  const snapshot = snapshotCheckout(ROOT);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bias-suite-"));
  let code: number;
  try {
    // Ctrl-C reaches the test runner too (same process group); this process waits for it to end.
    process.on("SIGINT", () => undefined);
    code = await new Promise<number>((resolve) => {
      // NODE_TEST_CONTEXT (set when this runs inside a test) would make `--test` skip every file.
      const { NODE_TEST_CONTEXT: _inTest, ...env } = process.env;
      // Workers the tests start are compiled (tools/run-ts.sh) into the suite's folder, not the checkout's dist/.
      const child = spawn(process.execPath, ["--import", "tsx", "--test", ...files], { cwd: ROOT, stdio: "inherit", env: { ...env, TMPDIR: tmp, BIAS_INIT_DIST_DIR: path.join(tmp, DIST) } });
      child.on("close", (c, signal) => resolve(c ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1)));
    });
    const changes = checkoutChanges(snapshot);
    if (changes.length > 0) {
      console.error(`test/run_suite.ts: the tests changed the checkout's ${changes.length} file(s) or folder(s) they must leave alone:\n  ${changes.join("\n  ")}`);
      code ||= 1;
    }
    const left = fs.readdirSync(tmp);
    const ours = left.filter((f) => f.startsWith("bias-"));
    if (ours.length > 0) {
      console.error(`test/run_suite.ts: tests left ${ours.length} temporary folder(s) behind (each test must remove its own): ${ours.join(", ")}`);
      code ||= 1;
    }
    const others = left.filter((f) => !f.startsWith("bias-") && f !== DIST);
    if (others.length > 0) console.log(`test/run_suite.ts: the suite's TMPDIR also held ${others.join(", ")} (tool caches; removed)`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
    removeSentinels(snapshot);
  }
  if (code === 0) console.log("test/run_suite.ts: reports/, results/, data/, weights/ and dist/ of the checkout are byte-identical; no temporary folder left");
  return code;
}

main().then((code) => process.exit(code), (e: unknown) => {
  console.error(e);
  process.exit(1);
});
