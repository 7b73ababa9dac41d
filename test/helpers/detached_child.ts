// Child process for test/workers.test.ts: what a notebook cell's `nb.run(plan, { workers: 2, detach:
// true })` does (experiment/workers.ts runConfigOnWorkers) on the config in <config file>, its view's
// rows printed one per line. The test kills this process, as a restarted kernel would be.
import { readConfigFile } from "../../src/experiment/config_file";
import { runConfigOnWorkers } from "../../src/experiment/workers";
import { reportError } from "../../src/errors";

async function main(): Promise<void> {
  const [configFile, resultsDir] = process.argv.slice(2);
  const [config] = readConfigFile(configFile);
  const print = (row: string): void => void console.log(row);
  await runConfigOnWorkers(config, { workers: 2, detach: true, resultsDir, view: { setLine: () => undefined, addRow: print, finish: print } });
}

main().then(() => process.exit(0), (e: unknown) => process.exit(reportError(e)));
