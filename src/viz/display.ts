// Notebook output: figures, tables, markdown and a live progress line, sent to the tslab kernel as
// Jupyter MIME bundles, plus static export of a figure through headless Chromium.
//
// Figures: one output per figure carrying BOTH `application/vnd.plotly.v1+json` (JupyterLab's
// plotly renderer; it also renders when a saved notebook is reopened untrusted, where script HTML
// comes up blank) AND `text/html` with a small `Plotly.newPlot` script (what nbconvert's HTML uses;
// it renders offline because plotly.js itself is inlined once per kernel session, guarded by
// `if (!window.Plotly)`). tslab's public `display.raw` sends one MIME type per output, so bundles go
// through its lower-level writer (`tslab/dist/jupyter`'s `lastWriteDisplayData`).
//
// Outside a kernel (CLI, tests) every output falls back to its text/plain part on stdout, unless a
// sink is installed with `setDisplaySink` (tests capture bundles that way).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFile } from "child_process";
import { randomBytes } from "crypto";
import { deflateSync } from "zlib";

/** A Jupyter MIME bundle: MIME type -> content (strings, or JSON for +json types). */
export type MimeBundle = Record<string, unknown>;

/** What a Plotly figure is: the shape `Plotly.newPlot` takes (figures.ts returns these). */
export interface PlotlyFigure {
  data: ReadonlyArray<object>;
  layout?: object;
  config?: object;
}

export interface DisplayMessage {
  data: MimeBundle;
  metadata: Record<string, unknown>;
  transient: { display_id?: string };
}

/** Receives every output; `update` replaces the earlier output with the same display_id. */
export type DisplaySink = (message: DisplayMessage, update: boolean) => void;

let installedSink: DisplaySink | null = null;

/** Routes outputs to `sink` (tests), or back to the automatic choice with null. */
export function setDisplaySink(sink: DisplaySink | null): void {
  installedSink = sink;
}

/** True inside a tslab kernel (tslab defines `__tslab__` on the global object before any cell runs). */
export function inKernel(): boolean {
  return (globalThis as Record<string, unknown>).__tslab__ !== undefined;
}

type KernelWriter = (message: DisplayMessage, update: boolean) => void;

/**
 * tslab's writer for the cell being executed. It is replaced at every execute request (it carries
 * that request's parent header), so it is looked up per output, never cached. Loaded lazily: its
 * module pulls in tslab's TypeScript compiler, which is not wanted outside a kernel.
 */
function kernelWriter(): KernelWriter | null {
  if (!inKernel()) return null;
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const jupyter = require("tslab/dist/jupyter") as { lastWriteDisplayData: KernelWriter | null };
  return jupyter.lastWriteDisplayData;
}

function send(data: MimeBundle, displayId: string | null, update: boolean, metadata: Record<string, unknown> = {}): void {
  const message: DisplayMessage = { data, metadata, transient: displayId === null ? {} : { display_id: displayId } };
  if (installedSink) return installedSink(message, update);
  const writer = kernelWriter();
  if (writer) return writer(message, update);
  const text = data["text/plain"];
  if (typeof text === "string" && text.length > 0) console.log(text);
}

/** Shows one bundle as a new output; `metadata` is stored with it in the notebook (tools read it). */
export function showBundle(bundle: MimeBundle, metadata: Record<string, unknown> = {}): void {
  send(bundle, null, false, metadata);
}

/** An output that can be rewritten in place (Jupyter display_id + update_display_data). */
export class LiveOutput {
  readonly displayId = randomBytes(8).toString("hex");
  private shown = false;

  /** First call creates the output, later calls replace it. */
  set(bundle: MimeBundle): void {
    send(bundle, this.displayId, this.shown);
    this.shown = true;
  }
}

// ---------------------------------------------------------------------------------------------
// HTML helpers

/** Monospace like a code cell, so fixed-width tables line up in HTML too. */
const PRE_STYLE = "margin:0;font-family:var(--jp-code-font-family, monospace);font-size:var(--jp-code-font-size, 13px);line-height:1.4";

export function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

/** JSON safe to place inside a <script> element (no `</script>`, no U+2028/2029 line breaks). */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
}

export function showHtml(html: string, text = ""): void {
  showBundle({ "text/html": html, "text/plain": text });
}

export function showMarkdown(markdown: string): void {
  showBundle({ "text/markdown": markdown, "text/plain": markdown });
}

export function showText(text: string): void {
  showBundle({ "text/plain": text });
}

/** A titled block of preformatted text (HTML `<pre>`), e.g. a model summary. */
export function showPre(text: string, title = ""): void {
  const head = title ? `<div style="font-weight:600;margin:4px 0">${escapeHtml(title)}</div>` : "";
  showBundle({ "text/html": `${head}<pre style="${PRE_STYLE}">${escapeHtml(text)}</pre>`, "text/plain": title ? `${title}\n${text}` : text });
}

// ---------------------------------------------------------------------------------------------
// Plotly

const PLOTLY_PACKAGES = ["plotly.js-dist-min/plotly.min.js", "plotly.js-dist/plotly.js"];

let plotlySource: { file: string; code: string } | null = null;

/** plotly.js as shipped by npm (the minified build when installed, else plotly.js-dist). */
export function plotlyLibrary(): { file: string; code: string } {
  if (plotlySource) return plotlySource;
  for (const id of PLOTLY_PACKAGES) {
    let file: string;
    try {
      file = require.resolve(id);
    } catch {
      continue;
    }
    plotlySource = { file, code: fs.readFileSync(file, "utf8") };
    return plotlySource;
  }
  throw new Error(`display: plotly.js not found (looked for ${PLOTLY_PACKAGES.join(", ")}); run npm ci`);
}

/**
 * A <script> that defines window.Plotly unless the page already has it. `</script` cannot occur
 * inside a script element, so any such text in the library is escaped (none in 3.x, but cheap).
 */
export function plotlyLibraryScript(): string {
  const code = plotlyLibrary().code.replace(/<\/script/gi, "<\\/script");
  return `<script type="text/javascript">if (!window.Plotly) {\n${code}\n}</script>`;
}

let plotlyInlined = false;

/** Forgets that plotly.js was sent (tests; a fresh kernel starts this way). */
export function resetPlotlyInlined(): void {
  plotlyInlined = false;
}

/**
 * Sends plotly.js once per kernel session as an output of its own (no visible content). The first
 * cell of every notebook calls this through `notebookSetup`; `showFigure` calls it too, so a figure
 * shown first still works. In the HTML export that output precedes every figure.
 */
export function ensurePlotlyLibrary(): void {
  if (plotlyInlined) return;
  showBundle({ "text/html": plotlyLibraryScript(), "text/plain": "" });
  plotlyInlined = true;
}

const DEFAULT_PLOT_CONFIG = { responsive: true, displaylogo: false };

/** Plain-text stand-in for a figure: its title and trace names. */
export function figureText(fig: PlotlyFigure): string {
  const layout = (fig.layout ?? {}) as { title?: string | { text?: string } };
  const title = typeof layout.title === "string" ? layout.title : layout.title?.text ?? "";
  const names = fig.data.map((t) => (t as { name?: string }).name).filter((n): n is string => typeof n === "string" && n.length > 0);
  const unique = names.filter((n, i) => names.indexOf(n) === i);
  return `<Plotly figure${title ? `: ${title.replace(/<[^>]*>/g, "")}` : ""}; ${fig.data.length} trace(s)${unique.length ? ` (${unique.join(", ")})` : ""}>`;
}

/**
 * The HTML part of a figure: a div and a script that plots into it once window.Plotly exists.
 * The script waits a little if the library output has not run yet, then says why it is blank.
 */
export function figureHtml(fig: PlotlyFigure, divId = `fig-${randomBytes(6).toString("hex")}`): string {
  const layout = (fig.layout ?? {}) as { height?: number };
  const height = typeof layout.height === "number" ? layout.height : 450;
  const config = { ...DEFAULT_PLOT_CONFIG, ...(fig.config ?? {}) };
  return `<div id="${divId}" class="plotly-graph-div" style="width:100%;height:${height}px"></div>\n` +
    `<script type="text/javascript">(function () {\n` +
    `  var fig = ${scriptJson({ data: fig.data, layout: fig.layout ?? {}, config: config })};\n` +
    `  var tries = 0;\n` +
    `  function draw() {\n` +
    `    var div = document.getElementById(${scriptJson(divId)});\n` +
    `    if (!div) return;\n` +
    `    if (window.Plotly) { window.Plotly.newPlot(div, fig.data, fig.layout, fig.config); return; }\n` +
    `    if (++tries < 50) { setTimeout(draw, 100); return; }\n` +
    `    div.style.height = "auto";\n` +
    `    div.textContent = "plotly.js is not loaded: run the notebook's first cell (notebookSetup), then this one.";\n` +
    `  }\n` +
    `  draw();\n` +
    `})();</script>`;
}

/** The bundle of one figure: Plotly JSON for JupyterLab, HTML + script for nbconvert, a text line. */
export function figureBundle(fig: PlotlyFigure, divId?: string): MimeBundle {
  return {
    "application/vnd.plotly.v1+json": { data: fig.data, layout: fig.layout ?? {}, config: { ...DEFAULT_PLOT_CONFIG, ...(fig.config ?? {}) } },
    "text/html": figureHtml(fig, divId),
    "text/plain": figureText(fig),
  };
}

export function showFigure(fig: PlotlyFigure): void {
  checkFigure(fig, "showFigure");
  ensurePlotlyLibrary();
  showBundle(figureBundle(fig));
}

function checkFigure(fig: PlotlyFigure, fn: string): void {
  if (fig === null || typeof fig !== "object" || !Array.isArray(fig.data)) {
    throw new TypeError(`${fn}: expected a Plotly figure {data: [...], layout: {...}}, got ${fig === null ? "null" : typeof fig}`);
  }
}

/**
 * A complete offline HTML page (plotly.js inlined) that draws each figure in turn with
 * Plotly.toImage and writes the resulting data URLs into <textarea id="out-i"> elements, which
 * Chromium's --dump-dom then prints. One page for many figures: plotly.js is parsed once.
 */
export function exportPage(figures: ReadonlyArray<{ fig: PlotlyFigure; format: "png" | "svg"; width: number; height: number; scale: number }>): string {
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

// ---------------------------------------------------------------------------------------------
// Static export through headless Chromium

const CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome", "/usr/bin/google-chrome-stable"];

/** Path of a Chromium/Chrome binary (env CHROMIUM_PATH first), or a clear error. */
export function findChromium(): string {
  const fromEnv = process.env.CHROMIUM_PATH;
  if (fromEnv) {
    if (!fs.existsSync(fromEnv)) throw new Error(`CHROMIUM_PATH=${fromEnv} does not exist`);
    return fromEnv;
  }
  const found = CHROMIUM_CANDIDATES.find((p) => fs.existsSync(p));
  if (!found) {
    throw new Error(`no headless Chromium found (looked for ${CHROMIUM_CANDIDATES.join(", ")}). ` +
      "Install it with `apt-get install -y chromium`, or set CHROMIUM_PATH to a Chrome/Chromium binary.");
  }
  return found;
}

/** The flags that make Chromium render a local file headless, quickly, with no network or profile. */
export function chromiumArgs(userDataDir: string, extra: string[]): string[] {
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

export interface ExportOptions {
  width?: number;
  height?: number;
  /** Pixel ratio of PNGs (default 2); SVG ignores it. */
  scale?: number;
}

/**
 * Writes figures as PNG or SVG (by each file's extension), rendered by plotly.js in one headless
 * Chromium run. A bare file name goes to reports/. Returns the absolute paths written.
 */
export async function exportFigures(items: ReadonlyArray<{ fig: PlotlyFigure; file: string }>, opts: ExportOptions = {}): Promise<string[]> {
  if (items.length === 0) return [];
  const jobs = items.map(({ fig, file }) => {
    const ext = path.extname(file).toLowerCase();
    if (ext !== ".png" && ext !== ".svg") throw new Error(`exportFigure: ${file}: the extension must be .png or .svg`);
    const layout = (fig.layout ?? {}) as { width?: number; height?: number };
    return {
      fig, file,
      target: path.resolve(path.dirname(file) === "." ? path.join("reports", file) : file),
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

// ---------------------------------------------------------------------------------------------
// Tables

/** The parts of a danfojs DataFrame a table needs (kept structural so tests can pass plain objects). */
export interface TableLike {
  columns: string[];
  values: unknown[] | unknown[][];
}

export interface TableOptions {
  caption?: string;
  /** Significant decimals for non-integer numbers (default 4). */
  digits?: number;
  /** Show at most this many rows (default 200), saying how many were left out. */
  maxRows?: number;
}

function formatCell(v: unknown, digits: number): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") {
    if (Number.isNaN(v)) return "NaN";
    return Number.isInteger(v) ? String(v) : v.toFixed(digits);
  }
  return String(v);
}

function tableRows(table: TableLike): unknown[][] {
  const values = table.values;
  // danfojs returns a flat array for a one-column frame.
  return values.map((row) => (Array.isArray(row) ? row : [row]));
}

/** A DataFrame as an HTML table and an aligned text table. */
export function tableBundle(table: TableLike, opts: TableOptions = {}): MimeBundle {
  const digits = opts.digits ?? 4;
  const maxRows = opts.maxRows ?? 200;
  const all = tableRows(table);
  const rows = all.slice(0, maxRows).map((r) => r.map((v) => formatCell(v, digits)));
  const more = all.length > maxRows ? `${all.length - maxRows} more rows not shown` : "";
  const numeric = table.columns.map((_, j) => all.some((r) => typeof r[j] === "number"));
  const align = (j: number) => (numeric[j] ? "right" : "left");
  // Wide tables scroll sideways instead of being cut off in the HTML report.
  const html = `<div style="overflow-x:auto"><table class="dataframe" style="border-collapse:collapse;font-variant-numeric:tabular-nums">` +
    (opts.caption ? `<caption style="text-align:left;font-weight:600">${escapeHtml(opts.caption)}</caption>` : "") +
    `<thead><tr>${table.columns.map((c, j) => `<th style="text-align:${align(j)};padding:2px 8px">${escapeHtml(c)}</th>`).join("")}</tr></thead>` +
    `<tbody>${rows.map((r) => `<tr>${r.map((c, j) => `<td style="text-align:${align(j)};padding:2px 8px">${escapeHtml(c)}</td>`).join("")}</tr>`).join("")}</tbody>` +
    `</table></div>${more ? `<p><i>${more}</i></p>` : ""}`;
  const widths = table.columns.map((c, j) => Math.max(c.length, ...rows.map((r) => r[j].length)));
  const line = (cells: string[]) => cells.map((c, j) => (numeric[j] ? c.padStart(widths[j]) : c.padEnd(widths[j]))).join("  ").trimEnd();
  const text = [opts.caption ?? "", line(table.columns), ...rows.map(line), more].filter((s) => s.length > 0).join("\n");
  return { "text/html": html, "text/plain": text };
}

export function showTable(table: TableLike, opts: TableOptions = {}): void {
  if (!table || !Array.isArray(table.columns) || !Array.isArray(table.values)) {
    throw new TypeError("showTable: expected a danfojs DataFrame (or {columns, values})");
  }
  showBundle(tableBundle(table, opts));
}

// ---------------------------------------------------------------------------------------------
// Live progress

/**
 * A progress block updated in place: one status line on top, then a growing fixed-width table
 * (e.g. one row per finished epoch). Line updates are throttled so a fast loop does not flood the
 * kernel channel; table rows and `finish` are always sent.
 */
export class LiveProgress {
  private readonly output = new LiveOutput();
  private line = "";
  private readonly rows: string[] = [];
  private lastSent = -Infinity;

  constructor(private readonly tableHeader: string, private readonly minIntervalMs = 500, private readonly now: () => number = Date.now) {}

  setLine(line: string): void {
    this.line = line;
    const t = this.now();
    if (t - this.lastSent >= this.minIntervalMs) this.flush(t);
  }

  addRow(row: string): void {
    this.rows.push(row);
    this.flush(this.now());
  }

  /** Final state: the closing line replaces the progress line. */
  finish(line: string): void {
    this.line = line;
    this.flush(this.now());
  }

  text(): string {
    return [this.line, ...(this.rows.length > 0 ? ["", this.tableHeader, ...this.rows] : [])].join("\n");
  }

  private flush(t: number): void {
    this.lastSent = t;
    const text = this.text();
    this.output.set({ "text/html": `<pre style="${PRE_STYLE}">${escapeHtml(text)}</pre>`, "text/plain": text });
  }
}

// ---------------------------------------------------------------------------------------------
// Images

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "ascii");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** An 8-bit RGB PNG from HWC bytes (e.g. data/preprocess.ts's imageToRgbBytes), so images need no canvas. */
export function rgbToPng(rgb: Uint8Array, width: number, height: number): Buffer {
  if (rgb.length !== width * height * 3) throw new Error(`rgbToPng: ${rgb.length} bytes is not ${width}x${height}x3`);
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0; // filter: none
    raw.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (width * 3 + 1) + 1);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk("IHDR", header),
    pngChunk("IDAT", deflateSync(raw)), pngChunk("IEND", new Uint8Array(0))]);
}

export interface LabelledImage {
  png: Buffer;
  caption: string;
  /** Drawn with a coloured frame (e.g. the positive class). */
  highlight?: boolean;
}

/** Small images in a grid, enlarged with crisp pixels, each with a caption. */
export function imageGridHtml(images: readonly LabelledImage[], size = 64): string {
  const cells = images.map((im) =>
    `<figure style="margin:2px;text-align:center;font-size:11px">` +
    `<img src="data:image/png;base64,${im.png.toString("base64")}" width="${size}" height="${size}" ` +
    `style="image-rendering:pixelated;border:3px solid ${im.highlight ? "#1d3557" : "transparent"}" alt="${escapeHtml(im.caption)}">` +
    `<figcaption>${escapeHtml(im.caption)}</figcaption></figure>`).join("");
  return `<div style="display:flex;flex-wrap:wrap">${cells}</div>`;
}

export function showImageGrid(images: readonly LabelledImage[], title = ""): void {
  const head = title ? `<div style="font-weight:600;margin:4px 0">${escapeHtml(title)}</div>` : "";
  showBundle({ "text/html": head + imageGridHtml(images), "text/plain": `${title}${title ? ": " : ""}${images.length} images (${images.map((i) => i.caption).join(", ")})` });
}
