// `results merge SRC... DEST`: the finished units of stores trained on machines without a shared
// file system, copied into one store. A store is a `results/<hash>` folder (with its config.json);
// a results root holding such folders merges store by store into DEST/<hash>.
//
// Checked first, for every source and unit, before anything is written: the config key (every
// field of config.json but the data note, which names local paths) and the numerics version
// match; a unit both hold finished has the same numbers (epoch and step rows apart from the timing
// columns); a unit DEST holds unfinished is not being trained and its rows begin the source's.
// Any problem refuses the whole merge with one line and changes nothing. Then each unit is copied
// (epochs, steps, status; no checkpoint, no lock) into a temporary folder beside its place and
// renamed into it, so a unit is either absent, as it was, or complete. A unit DEST already holds
// with the same numbers is left as it is: merging the same source again does nothing.
import * as fs from "fs";
import * as path from "path";
import { lockSettings } from "../config";
import { writeFileAtomic } from "../util/atomic_write";
import { leftoverTag } from "../util/leftovers";
import { canonicalJson } from "./result_key";
import { UserError } from "../errors";
import type { EpochRecord, StepRecord } from "./records";
import { parseUnitName, ResultsStore, UnitKey, unitLabel, unitName } from "./store";

export class MergeError extends UserError {
  override name = "MergeError";
}

const isStore = (dir: string): boolean => fs.existsSync(path.join(dir, "config.json"));
const storeOf = (dir: string): ResultsStore => new ResultsStore(path.dirname(path.resolve(dir)), path.basename(path.resolve(dir)));
const readMeta = (dir: string): Record<string, unknown> => JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")) as Record<string, unknown>;

/** The rows of a unit that carry its numbers: epoch records without timing columns, and step losses. */
function numbers(store: ResultsStore, u: UnitKey): { epochs: Array<Record<string, unknown>>; steps: StepRecord[] } {
  const strip = (r: EpochRecord): Record<string, unknown> => {
    const { wall_s: _w, images_per_s: _i, ...rest } = r;
    return rest;
  };
  return { epochs: store.epochs(u).map(strip), steps: store.steps(u) };
}

/** The first field where two config.json files differ (the data note aside), or null. */
function keyDifference(a: Record<string, unknown>, b: Record<string, unknown>): string | null {
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    if (k === "note") continue;
    if (canonicalJson(a[k]) !== canonicalJson(b[k])) return `${k} ${canonicalJson(a[k]) ?? "absent"} vs ${canonicalJson(b[k]) ?? "absent"}`;
  }
  return null;
}

interface Copy {
  /** The SRC argument it comes from. */
  source: string;
  from: ResultsStore;
  into: ResultsStore;
  unit: UnitKey;
  /** DEST holds an unfinished version of the unit, replaced by this one. */
  replaces: boolean;
}

interface Plan {
  copies: Copy[];
  /** Stores DEST lacks: created with this config.json. */
  create: Map<string, string>;
  same: number;
}

/** Plans the merge of one source store into one destination store; throws MergeError on any problem. */
function planStore(source: string, srcDir: string, destDir: string, plan: Plan): void {
  const src = storeOf(srcDir);
  const dest = storeOf(destDir);
  const srcMeta = readMeta(srcDir);
  const planned = plan.create.get(dest.dir);
  const destMeta = isStore(destDir) ? readMeta(destDir) : planned !== undefined ? JSON.parse(planned) as Record<string, unknown> : null;
  if (destMeta !== null) {
    if (srcMeta.numericsVersion !== destMeta.numericsVersion) {
      throw new MergeError(`results merge: ${srcDir} holds results of numerics version ${srcMeta.numericsVersion}, ${destDir} of version ${destMeta.numericsVersion}; ` +
        "results of different code never share a store; nothing was changed");
    }
    const diff = keyDifference(srcMeta, destMeta);
    if (diff !== null) throw new MergeError(`results merge: ${srcDir} and ${destDir} hold different configs (${diff}); merge stores of one config only; nothing was changed`);
  } else plan.create.set(dest.dir, fs.readFileSync(path.join(srcDir, "config.json"), "utf8"));
  const staleMs = lockSettings().staleMs;
  for (const name of fs.readdirSync(srcDir).sort()) {
    const unit = parseUnitName(name);
    if (unit === null) continue;
    const status = src.status(unit);
    if (status?.state !== "done" && status?.state !== "failed") continue;
    const where = `${path.join(srcDir, name)}`;
    if (status.numerics !== undefined && status.numerics !== srcMeta.numericsVersion) {
      throw new MergeError(`results merge: ${where} was written by code of numerics version ${status.numerics}, its store is version ${srcMeta.numericsVersion}; delete that unit; nothing was changed`);
    }
    const theirs = numbers(src, unit);
    // Another source of this merge may bring the unit first.
    const earlier = plan.copies.find((c) => c.into.dir === dest.dir && unitName(c.unit) === name);
    const holder = earlier?.from ?? dest;
    const held = numbers(holder, unit);
    const heldState = holder.status(unit)?.state;
    const conflict = (): MergeError => new MergeError(`results merge: ${unitLabel(unit)} differs between ${where} and ${path.join(holder.dir, name)} ` +
      `(${firstDifference(theirs, held)}); they were trained differently (another engine or code); merge only one of them; nothing was changed`);
    if (heldState === "done" || heldState === "failed") {
      if (canonicalJson(held) !== canonicalJson(theirs) || heldState !== status.state) throw conflict();
      plan.same++;
      continue;
    }
    if (!fs.existsSync(dest.unitDir(unit))) {
      plan.copies.push({ source, from: src, into: dest, unit, replaces: false });
      continue;
    }
    const owner = dest.liveOwner(unit, staleMs);
    if (owner !== null) {
      throw new MergeError(`results merge: ${path.join(dest.dir, name)} is being trained now (pid ${owner.pid} on ${owner.host}); merge once that run ends; nothing was changed`);
    }
    if (canonicalJson(held.epochs) !== canonicalJson(theirs.epochs.slice(0, held.epochs.length))) throw conflict();
    plan.copies.push({ source, from: src, into: dest, unit, replaces: true });
  }
}

function firstDifference(a: { epochs: Array<Record<string, unknown>>; steps: StepRecord[] }, b: typeof a): string {
  for (let i = 0; i < Math.max(a.epochs.length, b.epochs.length); i++) {
    const x = a.epochs[i];
    const y = b.epochs[i];
    if (x === undefined || y === undefined) return `${a.epochs.length} vs ${b.epochs.length} epoch rows`;
    const field = Object.keys(x).find((k) => canonicalJson(x[k]) !== canonicalJson(y[k]));
    if (field !== undefined) return `epoch ${x.epoch} ${field} ${canonicalJson(x[field])} vs ${canonicalJson(y[field])}`;
  }
  return a.steps.length !== b.steps.length ? `${a.steps.length} vs ${b.steps.length} step rows` : "step losses differ";
}

/** Copies one unit's records into place through a temporary folder beside it. */
function copyUnit(c: Copy): void {
  const target = c.into.unitDir(c.unit);
  const tmp = `${target}.tmp-${leftoverTag()}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  for (const f of ["epochs.jsonl", "steps.jsonl", "status.json"]) {
    const from = path.join(c.from.unitDir(c.unit), f);
    if (fs.existsSync(from)) fs.copyFileSync(from, path.join(tmp, f));
  }
  if (c.replaces) {
    const old = `${target}.old.tmp-${leftoverTag()}`;
    fs.renameSync(target, old);
    fs.renameSync(tmp, target);
    fs.rmSync(old, { recursive: true, force: true });
  } else fs.renameSync(tmp, target);
}

/** Pairs each source store with its destination: store to store, or root to root by folder name. */
function storePairs(sources: string[], dest: string): Array<[string, string, string]> {
  const missing = sources.find((s) => !fs.existsSync(s) || !fs.statSync(s).isDirectory());
  if (missing !== undefined) throw new MergeError(`results merge: ${missing} is not a folder; give results/<hash> store folders or results roots`);
  if (sources.every(isStore)) {
    if (fs.existsSync(dest) && !isStore(dest) && fs.readdirSync(dest).length > 0) {
      throw new MergeError(`results merge: ${dest} is not a store (no config.json) and not empty; give a store folder (results/<hash>) or a new folder as DEST`);
    }
    return sources.map((s) => [s, s, dest]);
  }
  const pairs: Array<[string, string, string]> = [];
  for (const root of sources) {
    if (isStore(root)) throw new MergeError(`results merge: ${root} is a store but other sources are results roots; give stores only or roots only`);
    const stores = fs.readdirSync(root).filter((n) => isStore(path.join(root, n)));
    if (stores.length === 0) throw new MergeError(`results merge: ${root} holds no store (no <hash>/config.json); give results/<hash> folders or results roots`);
    for (const name of stores.sort()) pairs.push([root, path.join(root, name), path.join(dest, name)]);
  }
  return pairs;
}

/** Merges the finished units of `sources` into `dest`; returns one line saying what it did. */
export function mergeStores(sources: string[], dest: string): string {
  const plan: Plan = { copies: [], create: new Map(), same: 0 };
  for (const [source, src, into] of storePairs(sources, dest)) {
    if (path.resolve(src) === path.resolve(into)) throw new MergeError(`results merge: ${src} is also the destination; give another DEST`);
    planStore(source, src, into, plan);
  }
  if (plan.copies.length === 0) return `nothing to merge: ${dest} already holds every finished unit of ${sources.join(", ")} (${plan.same} unit(s))`;
  for (const [dir, config] of plan.create) {
    fs.mkdirSync(dir, { recursive: true });
    writeFileAtomic(path.join(dir, "config.json"), config);
  }
  for (const c of plan.copies) copyUnit(c);
  const bySource = sources.map((s) => `${s} (${plan.copies.filter((c) => c.source === s).length})`);
  return `merged ${plan.copies.length} unit(s) into ${dest} from ${bySource.join(", ")}; ${plan.same} already there`;
}
