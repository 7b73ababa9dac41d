// What `make doctor` reports about the machine itself: OS, glibc, Node, Python and pip's indexes,
// free disk where wheels and data go, and the NVIDIA GPUs as nvidia-smi lists them. Every probe
// catches its own failure and says so: the doctor must answer on a broken machine too.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export interface GpuInfo {
  index: number;
  name: string;
  driver: string;
  /** "7.5" etc.; null where the driver is too old to report it. */
  computeCapability: string | null;
  memoryMiB: number | null;
}

export interface NvidiaSmiFacts {
  /** False when no nvidia-smi is on PATH. */
  found: boolean;
  /** Why it listed nothing (its own message), or null. */
  error: string | null;
  gpus: GpuInfo[];
}

export interface IndexCheck {
  url: string;
  reachable: boolean;
  detail: string;
}

export interface SystemFacts {
  os: string;
  kernel: string;
  arch: string;
  glibc: string | null;
  node: string;
  napi: string;
  cpus: number;
  memoryGiB: number;
  python: { path: string; version: string | null };
  /** pip's configured indexes (`pip config list`), each tried with a short timeout. */
  pipIndexes: IndexCheck[];
  disk: Array<{ what: string; path: string; freeGiB: number | null }>;
}

interface Run {
  ok: boolean;
  /** Set when the program could not be started at all (ENOENT: not installed). */
  missing: boolean;
  stdout: string;
  stderr: string;
}

export function runTool(cmd: string, args: string[], timeoutMs = 20_000): Run {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: timeoutMs, maxBuffer: 16 << 20 });
  const missing = (r.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
  return { ok: r.status === 0 && !r.error, missing, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

const firstLine = (text: string): string => text.trim().split("\n")[0] ?? "";

const GPU_FIELDS = ["index", "name", "driver_version", "compute_cap", "memory.total"];

/** nvidia-smi's GPU list. Drivers older than ~510 do not know `compute_cap`: asked again without it. */
export function queryNvidiaSmi(): NvidiaSmiFacts {
  for (const fields of [GPU_FIELDS, GPU_FIELDS.filter((f) => f !== "compute_cap")]) {
    const r = runTool("nvidia-smi", [`--query-gpu=${fields.join(",")}`, "--format=csv,noheader,nounits"]);
    if (r.missing) return { found: false, error: "nvidia-smi is not on PATH", gpus: [] };
    if (!r.ok) {
      const message = firstLine(r.stdout) || firstLine(r.stderr) || "nvidia-smi failed";
      if (/compute_cap/i.test(message) && fields.includes("compute_cap")) continue;
      return { found: true, error: message, gpus: [] };
    }
    const gpus = r.stdout.split("\n").filter((l) => l.trim() !== "").map((line) => {
      const cells = line.split(",").map((c) => c.trim());
      const get = (f: string): string | undefined => cells[fields.indexOf(f)];
      const mem = Number(get("memory.total"));
      const cc = get("compute_cap");
      return { index: Number(get("index")), name: get("name") ?? "?", driver: get("driver_version") ?? "?",
        computeCapability: cc && /^\d+\.\d+$/.test(cc) ? cc : null, memoryMiB: Number.isFinite(mem) ? mem : null };
    });
    return { found: true, error: gpus.length === 0 ? "nvidia-smi lists no GPU" : null, gpus };
  }
  return { found: true, error: "nvidia-smi does not answer the GPU query", gpus: [] };
}

/** Device memory this process holds on the GPU (MiB), from nvidia-smi; null where it cannot tell. */
export function gpuMemoryOfProcess(pid: number = process.pid): number | null {
  const r = runTool("nvidia-smi", ["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]);
  if (!r.ok) return null;
  for (const line of r.stdout.split("\n")) {
    const [p, mem] = line.split(",").map((c) => c.trim());
    if (Number(p) === pid && Number.isFinite(Number(mem))) return Number(mem);
  }
  return null;
}

/** "a.b.c" >= "x.y.z", numerically part by part. */
export function versionAtLeast(version: string, minimum: string): boolean {
  const a = version.split(".").map(Number);
  const b = minimum.split(".").map(Number);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (!Number.isFinite(x) || !Number.isFinite(y)) return false;
    if (x !== y) return x > y;
  }
  return true;
}

function osName(): string {
  try {
    const m = fs.readFileSync("/etc/os-release", "utf8").match(/^PRETTY_NAME="?([^"\n]*)"?/m);
    if (m) return m[1];
  } catch {
    // not Linux, or no os-release: fall through
  }
  return `${os.type()} ${os.release()}`;
}

function glibcVersion(): string | null {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime ?? null;
}

/** The Python the build uses: the repo's .venv if present, else python3 on PATH. */
export function buildPython(root: string): string {
  const venv = path.join(root, ".venv", "bin", "python");
  return fs.existsSync(venv) ? venv : "python3";
}

/** The indexes pip would use (index-url defaults to PyPI; extra-index-url may list several). */
export function pipIndexUrls(python: string): string[] {
  const r = runTool(python, ["-m", "pip", "config", "list"]);
  const urls: string[] = [];
  let index: string | null = null;
  for (const line of r.stdout.split("\n")) {
    const m = line.match(/^[^=]*\.(index-url|extra-index-url)='(.*)'$/);
    if (!m) continue;
    const values = m[2].split(/\s+/).filter(Boolean);
    if (m[1] === "index-url") index = values[0] ?? index;
    else urls.push(...values);
  }
  return [index ?? "https://pypi.org/simple", ...urls].filter((u, i, all) => all.indexOf(u) === i);
}

async function checkIndex(url: string, timeoutMs: number): Promise<IndexCheck> {
  if (url.startsWith("file://")) {
    const dir = decodeURIComponent(new URL(url).pathname);
    return { url, reachable: fs.existsSync(dir), detail: fs.existsSync(dir) ? "local folder" : `${dir} does not exist` };
  }
  try {
    const res = await fetch(url, { method: "GET", signal: AbortSignal.timeout(timeoutMs), redirect: "follow" });
    await res.body?.cancel();
    return { url, reachable: res.ok, detail: `HTTP ${res.status}` };
  } catch (e) {
    const err = e as Error & { cause?: { code?: string } };
    return { url, reachable: false, detail: err.cause?.code ?? err.name ?? "unreachable" };
  }
}

function freeGiB(p: string): number | null {
  let dir = path.resolve(p);
  while (!fs.existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  try {
    const s = fs.statfsSync(dir);
    return (s.bavail * s.bsize) / 2 ** 30;
  } catch {
    return null;
  }
}

export async function systemFacts(root: string, places: Array<{ what: string; path: string }>, indexTimeoutMs = 3000): Promise<SystemFacts> {
  const python = buildPython(root);
  const pyVersion = runTool(python, ["--version"]);
  const indexes = pyVersion.ok ? pipIndexUrls(python) : [];
  return {
    os: osName(),
    kernel: os.release(),
    arch: os.arch(),
    glibc: glibcVersion(),
    node: process.version,
    napi: process.versions.napi ?? "?",
    cpus: os.cpus().length,
    memoryGiB: os.totalmem() / 2 ** 30,
    python: { path: python, version: pyVersion.ok ? firstLine(pyVersion.stdout || pyVersion.stderr) : null },
    pipIndexes: await Promise.all(indexes.map((u) => checkIndex(u, indexTimeoutMs))),
    disk: places.map((p) => ({ ...p, freeGiB: freeGiB(p.path) })),
  };
}
