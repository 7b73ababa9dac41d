// `make doctor` (ARGS=--json for machines): what this machine has and lacks for each engine, and
// the next command. Exits 0 whatever it finds; only a broken tool exits otherwise.
//   node --import tsx src/engine/doctor_main.ts [--json]
import { parseFlags } from "../util/args";
import { runMain } from "../errors";
import { doctorText, runDoctor } from "./doctor";

const USAGE = "usage: make doctor [ARGS=--json]   (or: node --import tsx src/engine/doctor_main.ts [--json])";

async function main(): Promise<number> {
  const flags = parseFlags(process.argv.slice(2), { json: { type: "boolean" }, help: { type: "boolean" } }, USAGE);
  if (flags.help) {
    console.log(USAGE);
    return 0;
  }
  const report = await runDoctor();
  console.log(flags.json ? JSON.stringify(report, null, 2) : doctorText(report));
  return 0;
}

if (require.main === module) runMain(main);
