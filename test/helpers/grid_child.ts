// Child process for test/crash_points.test.ts and test/store_sharing.test.ts: runs the grid of
// `makeConfig("smoke", <overrides JSON>)` into <resultsDir> through runExperiment, as the CLI and
// the notebooks do, and prints one JSON line per unit-start, unit-end, unit-skip, recovered,
// lock-lost and wait event, and per step ({type, unit, epoch, step}), so the parent can see who
// trained what. The environment (BIAS_INIT_CRASH_AFTER, BIAS_INIT_LOCK_STALE_S, ...) comes from
// the parent.
import { makeConfig, ConfigOverrides } from "../../src/config";
import { runExperiment } from "../../src/experiment/grid";
import { unitLabel } from "../../src/experiment/store";
import { reportError } from "../../src/errors";

async function main(): Promise<void> {
  const [overrides, resultsDir] = process.argv.slice(2);
  const config = makeConfig("smoke", JSON.parse(overrides) as ConfigOverrides);
  await runExperiment(config, {
    resultsDir,
    onEvent: (e) => {
      if (e.type === "step") console.log(JSON.stringify({ type: e.type, unit: unitLabel(e.unit), epoch: e.progress.epoch, step: e.progress.step }));
      else if (e.type === "unit-start" || e.type === "unit-end" || e.type === "unit-skip" || e.type === "recovered" || e.type === "lock-lost") {
        console.log(JSON.stringify({ type: e.type, unit: unitLabel(e.unit) }));
      } else if (e.type === "waiting" || e.type === "wait-timeout") console.log(JSON.stringify({ type: e.type, units: e.units.map((u) => unitLabel(u.unit)) }));
    },
  });
}

main().then(() => process.exit(0), (e: unknown) => process.exit(reportError(e)));
