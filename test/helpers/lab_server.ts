// For test/lab.test.ts: JupyterLab started the way `make lab` starts it (tools/jupyter/lab.sh), on
// a free local port with a token, with every folder Jupyter writes to (config, data, runtime, user
// settings, workspaces, HOME) inside one temporary folder, and stopped by pid, kernels included.
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { ChildProcess, spawn } from "child_process";
import { randomBytes } from "crypto";

export const ROOT = path.resolve(__dirname, "..", "..");

/** The folders of one test run, all under `base`. */
export interface LabDirs {
  base: string;
  /** What the server serves (its root_dir): the notebook copy lives here. */
  serve: string;
  runtime: string;
  results: string;
  reports: string;
}

export function labDirs(base: string): LabDirs {
  const dirs = { base, serve: path.join(base, "serve"), runtime: path.join(base, "runtime"), results: path.join(base, "results"), reports: path.join(base, "reports") };
  for (const d of [dirs.serve, dirs.runtime, dirs.results, dirs.reports]) fs.mkdirSync(d, { recursive: true });
  return dirs;
}

/** The environment of the server and of what it starts: nothing of the user's Jupyter is read or written. */
export function labEnv(dirs: LabDirs, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) if (/^(JUPYTER|JUPYTERLAB|JPY)_/.test(name)) delete env[name];
  const sub = (name: string): string => {
    const p = path.join(dirs.base, name);
    fs.mkdirSync(p, { recursive: true });
    return p;
  };
  return {
    ...env,
    HOME: sub("home"),
    JUPYTER_CONFIG_DIR: sub("config"),
    JUPYTER_DATA_DIR: sub("data"),
    JUPYTER_RUNTIME_DIR: dirs.runtime,
    JUPYTERLAB_SETTINGS_DIR: sub("user-settings"),
    JUPYTERLAB_WORKSPACES_DIR: sub("workspaces"),
    BIAS_INIT_PRESET: "smoke",
    BIAS_INIT_RESULTS: dirs.results,
    BIAS_INIT_REPORTS: dirs.reports,
    BIAS_INIT_DATA: sub("bias-data"),
    ...extra,
  };
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export class LabServer {
  readonly token = randomBytes(16).toString("hex");
  private proc: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  port = 0;

  constructor(private readonly dirs: LabDirs, private readonly env: NodeJS.ProcessEnv, readonly log: string) {}

  url(pathAndQuery: string): string {
    return `http://127.0.0.1:${this.port}${pathAndQuery}${pathAndQuery.includes("?") ? "&" : "?"}token=${this.token}`;
  }

  /**
   * Starts tools/jupyter/lab.sh (what `make lab` runs) serving dirs.serve, and waits until the API answers.
   * The free port is picked here and the server is told not to move off it, so another process can
   * take it in between: a server that exits saying so is started again on a new port (3 tries).
   */
  async start(timeoutMs = 120_000): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.startOnce(timeoutMs);
      } catch (e) {
        if (attempt === 3 || !/already in use/i.test(String(e))) throw e;
      }
    }
  }

  private async startOnce(timeoutMs: number): Promise<void> {
    this.port = await freePort();
    const out = fs.openSync(this.log, "a");
    const args = [path.join(ROOT, "tools", "jupyter", "lab.sh"), "--no-browser", "--ServerApp.ip=127.0.0.1", `--ServerApp.port=${this.port}`,
      "--ServerApp.port_retries=0", `--IdentityProvider.token=${this.token}`, `--ServerApp.root_dir=${this.dirs.serve}`,
      ...(process.getuid?.() === 0 ? ["--allow-root"] : [])];
    const proc = spawn("bash", args, { cwd: ROOT, env: this.env, stdio: ["ignore", out, out] });
    fs.closeSync(out);
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once("exit", () => resolve()));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`JupyterLab exited with ${proc.exitCode} before answering:\n${this.logTail()}`);
      try {
        const r = await fetch(this.url("/api/status"));
        if (r.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`JupyterLab did not answer within ${timeoutMs / 1000} s:\n${this.logTail()}`);
  }

  /**
   * SIGTERM to the server (lab.sh execs jupyter, so the pid is the server's), which shuts its kernels
   * down. Returns the pids of processes that outlived it and still name this run's runtime folder
   * (kernels get their connection file from there); those are killed, by pid.
   */
  async stop(timeoutMs = 60_000): Promise<number[]> {
    const proc = this.proc;
    this.proc = null;
    if (proc && proc.exitCode === null && proc.pid !== undefined) {
      proc.kill("SIGTERM");
      const timer = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), timeoutMs).unref());
      if ((await Promise.race([this.exited, timer])) === "timeout") {
        proc.kill("SIGKILL");
        await this.exited;
      }
    }
    // A kernel's shutdown can trail the server's exit by a moment.
    for (let i = 0; i < 20 && processesNaming(this.dirs.runtime).length > 0; i++) await new Promise((r) => setTimeout(r, 250));
    const left = processesNaming(this.dirs.runtime);
    for (const pid of left) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    return left;
  }

  logTail(chars = 4000): string {
    return fs.existsSync(this.log) ? fs.readFileSync(this.log, "utf8").slice(-chars) : "(no log)";
  }
}

/** Pids of live processes whose command line contains `text` (read from /proc; this process excluded). */
export function processesNaming(text: string): number[] {
  if (!fs.existsSync("/proc")) return [];
  const pids: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (cmdline.includes(text)) pids.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}
