// Static export of figures (PNG or SVG) through headless Chromium: plotly.js draws each figure in
// an offline page and Plotly.toImage hands back the image, which Chromium's --dump-dom prints.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFile } from "child_process";
import { UserError } from "../errors";
import { defaultReportsDir, readEnvironment } from "../config";
import { scriptJson } from "./html_output";
import { plotlyLibraryScript } from "./plotly_inline";
import { PlotlyFigure, checkFigure } from "./plotly_figure";

const CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome", "/usr/bin/google-chrome-stable"];

/** Path of a Chromium/Chrome binary (env CHROMIUM_PATH first), or a UserError saying how to get one. */
export function findChromium(): string {
  const fromEnv = readEnvironment().CHROMIUM_PATH;
  if (fromEnv) {
    if (!fs.existsSync(fromEnv)) throw new UserError(`CHROMIUM_PATH: ${fromEnv} does not exist; point it at a Chrome/Chromium binary or unset it`);
    return fromEnv;
  }
  const found = CHROMIUM_CANDIDATES.find((p) => fs.existsSync(p));
  if (!found) {
    throw new UserError(`chromium: no headless Chromium found (looked for ${CHROMIUM_CANDIDATES.join(", ")}); ` +
      "install it with `apt-get install -y chromium`, or set CHROMIUM_PATH to a Chrome/Chromium binary");
  }
  return found;
}

/** The flags that make Chromium render a local file headless, quickly, with no network or profile. */
function chromiumArgs(userDataDir: string, extra: string[]): string[] {
  return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars", `--user-data-dir=${userDataDir}`, ...extra];
}

/** Runs Chromium headless on `url` and returns its stdout (e.g. the DOM with --dump-dom). */
export function runChromium(url: string, extra: string[], timeoutMs = 120_000): Promise<string> {
  const binary = findChromium();
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "bias-init-chromium-"));
  return new Promise<string>((resolve, reject) => {
    execFile(binary, [...chromiumArgs(profile, extra), url], { timeout: timeoutMs, maxBuffer: 512 * 1024 * 1024 }, (err, stdout, stderr) => {
      fs.rmSync(profile, { recursive: true, force: true });
      if (err) reject(new Error(`${binary} failed on ${url}: ${err.message}\n${String(stderr).slice(-2000)}`));
      else resolve(String(stdout));
    });
  });
}

interface ExportJob {
  fig: PlotlyFigure;
  format: "png" | "svg";
  width: number;
  height: number;
  scale: number;
}

/**
 * A complete offline HTML page (plotly.js inlined) that draws each figure in turn with
 * Plotly.toImage and writes the resulting data URLs into <textarea id="out-i"> elements, which
 * Chromium's --dump-dom then prints. One page for many figures: plotly.js is parsed once.
 */
function exportPage(figures: ReadonlyArray<ExportJob>): string {
  const jobs = figures.map((f, i) => {
    checkFigure(f.fig, "exportPage");
    return {
      data: f.fig.data,
      layout: { ...(f.fig.layout ?? {}), width: f.width, height: f.height },
      config: { ...(f.fig.config ?? {}), responsive: false, staticPlot: true },
      image: { format: f.format, width: f.width, height: f.height, scale: f.scale },
      out: `out-${i}`,
    };
  });
  return `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>figure export</title></head><body style="margin:0">\n` +
    `${plotlyLibraryScript()}\n<div id="fig"></div>\n${jobs.map((j) => `<textarea id="${j.out}"></textarea>`).join("\n")}\n<script>\n` +
    `var jobs = ${scriptJson(jobs)};\n` +
    `jobs.reduce(function (done, job) {\n` +
    `  return done.then(function () {\n` +
    `    return Plotly.newPlot("fig", job.data, job.layout, job.config)\n` +
    `      .then(function (gd) { return Plotly.toImage(gd, job.image); })\n` +
    `      .then(function (url) { document.getElementById(job.out).textContent = url; })\n` +
    `      .catch(function (e) { document.getElementById(job.out).textContent = "error:" + e; });\n` +
    `  });\n` +
    `}, Promise.resolve());\n</script></body></html>\n`;
}

export interface ExportOptions {
  width?: number;
  height?: number;
  /** Pixel ratio of PNGs (default 2); SVG ignores it. */
  scale?: number;
}

/**
 * Writes figures as PNG or SVG (by each file's extension), rendered by plotly.js in one headless
 * Chromium run. A bare file name goes to the reports folder (BIAS_INIT_REPORTS, default reports/). Returns the absolute paths written.
 */
export async function exportFigures(items: ReadonlyArray<{ fig: PlotlyFigure; file: string }>, opts: ExportOptions = {}): Promise<string[]> {
  if (items.length === 0) return [];
  const jobs = items.map(({ fig, file }) => {
    const ext = path.extname(file).toLowerCase();
    if (ext !== ".png" && ext !== ".svg") throw new UserError(`${file}: a figure is exported as .png or .svg; give the file one of those extensions`);
    const layout = (fig.layout ?? {}) as { width?: number; height?: number };
    return {
      fig, file,
      target: path.resolve(path.dirname(file) === "." ? path.join(defaultReportsDir(), file) : file),
      format: ext.slice(1) as "png" | "svg",
      width: opts.width ?? layout.width ?? 900,
      height: opts.height ?? layout.height ?? 500,
      scale: ext === ".png" ? opts.scale ?? 2 : 1,
    };
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bias-init-export-"));
  try {
    const html = path.join(dir, "export.html");
    fs.writeFileSync(html, exportPage(jobs));
    const dom = await runChromium(`file://${html}`, [`--virtual-time-budget=${10_000 + 5_000 * jobs.length}`, "--dump-dom"]);
    return jobs.map((job, i) => {
      const m = new RegExp(`<textarea id="out-${i}">([^<]*)</textarea>`).exec(dom);
      const url = m ? m[1].replace(/&quot;/g, '"').replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&") : "";
      if (!url.startsWith("data:")) {
        throw new Error(`exportFigure: ${job.file}: Chromium rendered no image${url.startsWith("error:") ? ` (plotly.js: ${url.slice(6)})` : " (plotly.js did not finish)"}`);
      }
      fs.mkdirSync(path.dirname(job.target), { recursive: true });
      fs.writeFileSync(job.target, decodeDataUrl(url, job.file));
      return job.target;
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** One figure as PNG or SVG (see exportFigures). */
export async function exportFigure(fig: PlotlyFigure, file: string, opts: ExportOptions = {}): Promise<string> {
  const [written] = await exportFigures([{ fig, file }], opts);
  return written;
}

function decodeDataUrl(url: string, file: string): Buffer {
  const comma = url.indexOf(",");
  if (!url.startsWith("data:") || comma < 0) throw new Error(`exportFigure: ${file}: Chromium returned no data URL`);
  const head = url.slice(5, comma);
  const body = url.slice(comma + 1);
  return head.endsWith(";base64") ? Buffer.from(body, "base64") : Buffer.from(decodeURIComponent(body), "utf8");
}
