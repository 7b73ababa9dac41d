// Notebook outputs made of HTML with a text/plain twin: markdown, tables, a progress block updated
// in place, and grids of small images. Each output goes to the kernel through kernel_output.ts.
import { LiveOutput, MimeBundle, showBundle } from "./kernel_output";

/** Monospace like a code cell, so fixed-width tables line up in HTML too; wide lines scroll, never wrap. */
const PRE_STYLE = "margin:0;white-space:pre;overflow-x:auto;font-family:var(--jp-code-font-family, monospace);font-size:var(--jp-code-font-size, 13px);line-height:1.4";

export function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

/** JSON safe to place inside a <script> element (no `</script>`, no U+2028/2029 line breaks). */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
}

export function showMarkdown(markdown: string): void {
  showBundle({ "text/markdown": markdown, "text/plain": markdown });
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

/**
 * One status line updated in place while slow steps run ("setup: loading engine..."), each finished
 * step with the time it took, then one closing line. A step's line is sent, and the event loop let
 * through once, before its work starts, so the line is on screen while synchronous work runs.
 */
export class StepStatus {
  private readonly progress: LiveProgress;
  private readonly done: string[] = [];
  private readonly started: number;

  constructor(private readonly title: string, private readonly now: () => number = Date.now) {
    this.progress = new LiveProgress("", 0, now);
    this.started = now();
  }

  /** Runs `work` under "`label`...", then keeps "`label`: 1.2 s". */
  async step<T>(label: string, work: () => T | Promise<T>): Promise<T> {
    const t = this.now();
    this.progress.setLine(this.line(`${label}...`));
    await new Promise((resolve) => setTimeout(resolve, 0));
    try {
      const value = await work();
      this.done.push(`${label}: ${seconds(this.now() - t)}`);
      return value;
    } catch (e) {
      this.progress.finish(this.line(`${label}: FAILED after ${seconds(this.now() - t)}`));
      throw e;
    }
  }

  finish(): void {
    this.progress.finish(`${this.title} done in ${seconds(this.now() - this.started)} (${this.done.join("; ")})`);
  }

  private line(current: string): string {
    return `${this.title}: ${[...this.done, current].join("; ")}`;
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

// ---------------------------------------------------------------------------------------------
// Image grids

export interface LabelledImage {
  /** A PNG file's bytes (png.ts's rgbToPng makes one from RGB pixels). */
  png: Buffer;
  caption: string;
  /** Drawn with a coloured frame (e.g. the positive class). */
  highlight?: boolean;
}

/** Small images in a grid, enlarged with crisp pixels, each with a caption. */
function imageGridHtml(images: readonly LabelledImage[], size = 64): string {
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
