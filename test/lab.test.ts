// The walkthrough as a user lives it, through JupyterLab itself: the server started the way
// `make lab` starts it (tools/jupyter/lab.sh) and Debian's Chromium driven by playwright-core.
// Open 00_walkthrough, Run All, re-run the training cell and the setup cell, save, stop and restart
// the server, reopen; then convert the saved file with plain `jupyter nbconvert --to html` (and the
// report's template) and check offline, in Chromium, that every figure draws.
//
// Everything runs on the smoke preset against a copy of the notebook, with the results store, the
// reports folder and every folder Jupyter writes to in one temporary folder (test/helpers/lab_server.ts).
// The backend is BIAS_INIT_BACKEND when set (CI runs the suite on js and on native), else auto.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { chromium, Browser, BrowserContext, Page } from "playwright-core";
import { LabDirs, LabServer, ROOT, labDirs, labEnv } from "./helpers/lab_server";

// Browser globals, used only inside functions that run in the page (the project compiles without the DOM library).
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
declare const window: any;
declare const MutationObserver: any;
type Element = any;
type DOMRect = { top: number; bottom: number; left: number; right: number; width: number; height: number };

const CHROMIUM = process.env.CHROMIUM_PATH?.trim() || "/usr/bin/chromium";
const JUPYTER = path.join(ROOT, ".venv", "bin", "jupyter");
const PYTHON = path.join(ROOT, ".venv", "bin", "python");
const skip = !fs.existsSync(CHROMIUM) ? `${CHROMIUM} is missing: apt-get install -y chromium (CI installs it)`
  : !fs.existsSync(JUPYTER) ? `${JUPYTER} is missing: run \`make setup\`` : false;
// The flags Chromium needs on these machines: without the background-networking ones it keeps
// trying to reach Google's hosts, which the closed network refuses.
const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const NOTEBOOK = "00_walkthrough.ipynb";
const KERNEL_NAME = "TypeScript (bias-init lab)";
/** 00_walkthrough's figures, in order: the class balance (1 bar trace) and the demo's step loss (2 arms, one trial: no bands). */
const FIGURE_TRACES = [1, 2];
const LIBRARY_MARK = "if (!window.Plotly) {";
// tsx compiles this file with esbuild's keepNames, which wraps named functions in __name(...); the
// functions handed to page.evaluate run in the page, so the page gets a __name that does nothing.
const KEEP_NAMES_SHIM = { content: "window.__name = function (fn) { return fn; };" };

interface Cell { cell_type: string; source: string | string[]; execution_count?: number | null; outputs?: Array<{ data?: Record<string, unknown> }> }
interface NotebookFile { cells: Cell[]; metadata: Record<string, unknown> }
const joined = (s: string | string[] | undefined): string => (Array.isArray(s) ? s.join("") : s ?? "");
const readNotebook = (file: string): NotebookFile => JSON.parse(fs.readFileSync(file, "utf8")) as NotebookFile;

/** Every code cell shows an execution count and the kernel is idle: what "Run All finished" looks like. */
async function waitForAllExecuted(page: Page, timeoutMs: number): Promise<void> {
  await page.waitForFunction(() => {
    const prompts = Array.from<Element>(document.querySelectorAll(".jp-CodeCell .jp-InputPrompt")).map((p) => (p.textContent ?? "").trim());
    const idle = document.querySelector('.jp-Notebook-ExecutionIndicator[data-status="idle"]') !== null;
    return idle && prompts.length > 0 && prompts.every((p) => /^\[\d+\]:$/.test(p));
  }, null, { timeout: timeoutMs, polling: 500 });
}

/** Index (among code cells) of the first code cell whose source contains `text`. */
async function codeCellIndex(page: Page, text: string): Promise<number> {
  const index = await page.evaluate((t) => Array.from<Element>(document.querySelectorAll(".jp-CodeCell")).findIndex((c) => (c.querySelector(".jp-InputArea-editor")?.textContent ?? "").includes(t)), text);
  assert.ok(index >= 0, `no code cell contains ${text}`);
  return index;
}

/** Selects a code cell (command mode, via its prompt) and runs it in place with Ctrl+Enter; waits for its new count. */
async function rerunCell(page: Page, index: number, timeoutMs: number): Promise<void> {
  const prompt = page.locator(".jp-CodeCell").nth(index).locator(".jp-InputPrompt");
  const before = Number(/\d+/.exec((await prompt.textContent()) ?? "")?.[0] ?? 0);
  await prompt.click();
  await page.keyboard.press("Escape");
  await page.keyboard.press("Control+Enter");
  await page.waitForFunction(({ i, n }) => {
    const text = document.querySelectorAll(".jp-CodeCell .jp-InputPrompt")[i]?.textContent ?? "";
    const m = /\[(\d+)\]/.exec(text);
    return m !== null && Number(m[1]) > n && document.querySelector('.jp-Notebook-ExecutionIndicator[data-status="idle"]') !== null;
  }, { i: index, n: before }, { timeout: timeoutMs, polling: 250 });
}

/** What Plotly drew in each figure of the page: traces in the SVG against traces in the figure's data. */
async function drawnFigures(page: Page, selector: string): Promise<Array<{ traces: number; data: number }>> {
  return page.evaluate((sel) => Array.from<Element>(document.querySelectorAll(sel)).map((gd) => ({
    traces: gd.querySelectorAll(".cartesianlayer g.trace").length,
    data: ((gd as unknown as { data?: unknown[] }).data ?? []).length,
  })), selector);
}

/** Texts of every output the page ever showed, recorded by a MutationObserver (live updates included). */
const RECORD_OUTPUTS = () => {
  const w = window as unknown as { __seen: string[] };
  w.__seen = [];
  const seen = new Set<string>();
  const record = (): void => {
    document.querySelectorAll(".jp-OutputArea-output").forEach((o: Element) => {
      const text = (o.textContent ?? "").trim().slice(0, 500);
      if (text && !seen.has(text)) {
        seen.add(text);
        w.__seen.push(text);
      }
    });
  };
  new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true });
};

function storeSnapshot(dir: string): string[] {
  const walk = (d: string): string[] => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(d, e.name);
    return e.isDirectory() ? walk(p) : [`${path.relative(dir, p)} ${fs.statSync(p).size} ${fs.statSync(p).mtimeMs}`];
  });
  return walk(dir).sort();
}

describe("JupyterLab in Chromium: 00_walkthrough as a user runs it (smoke preset)", { skip }, () => {
  let dirs: LabDirs;
  let server: LabServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  /** Requests the JupyterLab page made that were not to the server (refused). */
  const external: string[] = [];
  const newsRequests: string[] = [];
  const started = Date.now();
  const saved = (): string => path.join(dirs.serve, NOTEBOOK);

  before(async () => {
    dirs = labDirs(fs.mkdtempSync(path.join(os.tmpdir(), "bias-init-lab-")));
    fs.copyFileSync(path.join(ROOT, "notebooks", NOTEBOOK), saved());
    const extra: Record<string, string> = process.env.BIAS_INIT_BACKEND ? { BIAS_INIT_BACKEND: process.env.BIAS_INIT_BACKEND } : {};
    server = new LabServer(dirs, labEnv(dirs, extra), path.join(dirs.base, "server.log"));
    await server.start();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close();
    const left = server ? await server.stop() : [];
    if (dirs) fs.rmSync(dirs.base, { recursive: true, force: true });
    console.log(`lab test: ${((Date.now() - started) / 1000).toFixed(0)} s`);
    assert.deepEqual(left, [], "processes of this test still running after the server stopped (killed now)");
  });

  async function openNotebook(): Promise<void> {
    context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    await context.addInitScript(KEEP_NAMES_SHIM);
    await context.route("**/*", (route) => {
      const url = route.request().url();
      if (url.startsWith(`http://127.0.0.1:${server.port}/`) || url.startsWith("data:") || url.startsWith("blob:")) {
        if (url.includes("/lab/api/news")) newsRequests.push(url);
        return route.continue();
      }
      external.push(url);
      return route.abort();
    });
    page = await context.newPage();
    await page.goto(server.url(`/lab/tree/${NOTEBOOK}`));
    // The notebook's kernel started and idle (before it starts, the toolbar says "No Kernel", also idle).
    await page.waitForFunction((name) => (document.querySelector(".jp-KernelName")?.textContent ?? "").trim() === name &&
      document.querySelector('.jp-Notebook-ExecutionIndicator[data-status="idle"]') !== null, KERNEL_NAME, { timeout: 120_000, polling: 250 });
  }

  test("Run All (the project's kernel started by itself): no error output, every figure drawn, live progress in place, no news toast", async () => {
    await openNotebook();
    await page.evaluate(RECORD_OUTPUTS);
    await page.click('.lm-MenuBar-itemLabel:text-is("Run")');
    await page.click('.lm-Menu-itemLabel:text-is("Run All Cells")');
    await waitForAllExecuted(page, 300_000);

    assert.equal(await page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').count(), 0, "error or stderr outputs");
    await page.waitForFunction((n) => document.querySelectorAll(".jp-OutputArea .js-plotly-plot .main-svg").length >= n, FIGURE_TRACES.length, { timeout: 30_000 });
    const drawn = await drawnFigures(page, ".jp-OutputArea .js-plotly-plot");
    assert.deepEqual(drawn.map((d) => d.traces), FIGURE_TRACES, `figures drawn: ${JSON.stringify(drawn)}`);
    assert.deepEqual(drawn.map((d) => d.data), FIGURE_TRACES);

    // The setup cell's status line, seen while its steps ran, then its closing line.
    const seen = await page.evaluate(() => (window as unknown as { __seen: string[] }).__seen);
    assert.ok(seen.includes("setup: loading engine..."), `the setup line while the engine loads; seen: ${JSON.stringify(seen.filter((s) => s.startsWith("setup")))}`);
    assert.ok(seen.some((s) => /^setup: loading engine: \d+\.\d s; (generating the synthetic stand-in \([\d,]+ images\)|loading the synthetic stand-in|loading CIFAR-10 from \S+)\.\.\.$/.test(s)),
      `the setup line while the data is made or loaded; seen: ${JSON.stringify(seen.filter((s) => s.startsWith("setup")))}`);
    const setupCell = page.locator(".jp-CodeCell").nth(0).locator(".jp-OutputArea-output");
    assert.match((await setupCell.first().textContent()) ?? "", /^setup done in \d+\.\d s \(loading engine: \d+\.\d s; .+: \d+\.\d s\)$/);
    // The training cell: step lines replaced in place by the closing line, in one output.
    assert.ok(seen.filter((s) => /^\[[#.]{20}\] scratch\/\S+ trial 0 \| epoch 1\/1 step \d+\/20 \| loss /.test(s)).length >= 2, "at least two live step lines");
    const training = page.locator(".jp-CodeCell").nth(await codeCellIndex(page, 'nb.run("demo")')).locator(".jp-OutputArea-output");
    assert.equal(await training.count(), 1, "the progress block is one output, updated in place");
    assert.match((await training.first().textContent()) ?? "", /^done in \S+: 2 of 2 unit\(s\) complete in /);

    // No news toast: the project's settings (tools/jupyter/lab/settings/overrides.json) turn the feed off.
    assert.equal(await page.getByText("official Jupyter news").count(), 0, "the news toast");
    assert.deepEqual(newsRequests, []);
    // The override becomes the setting's default (the user's own settings, none here, would still win).
    const settings = await (await fetch(server.url("/lab/api/settings/@jupyterlab/apputils-extension:notification"))).json() as
      { settings: Record<string, unknown>; schema: { properties: { fetchNews: { default: unknown } } } };
    assert.deepEqual([settings.schema.properties.fetchNews.default, settings.settings], ["false", {}]);
    assert.deepEqual(external, [], "requests from the JupyterLab page to anything but the server");
    // The server's log, where the kernel's stderr goes: no tslab protocol warning, no TensorFlow start-up lines.
    assert.doesNotMatch(server.logTail(1e7), /unknown msg_type|absl::InitializeLog|oneDNN custom operations/);
  });

  test("the H(p) label sits above the plot area, clear of every curve and of the title", async () => {
    const boxes = await page.evaluate(() => Array.from<Element>(document.querySelectorAll(".jp-OutputArea .js-plotly-plot")).flatMap((gd) => {
      const label = Array.from<Element>(gd.querySelectorAll("g.annotation")).find((a) => /^H\(p\) = /.test(a.textContent ?? ""));
      if (!label) return [];
      const box = (e: Element | null) => (e ? e.getBoundingClientRect().toJSON() as DOMRect : null);
      return [{ label: box(label), plot: box(gd.querySelector(".draglayer .xy .nsewdrag")), title: box(gd.querySelector(".gtitle")) }];
    }));
    assert.equal(boxes.length, 1, "one H(p) label (the step-loss figure)");
    const { label, plot, title } = boxes[0];
    assert.ok(label && plot && title);
    assert.ok(label.height > 0 && label.width > 0, "the label is drawn");
    assert.ok(label.bottom <= plot.top + 0.5, `the label (bottom ${label.bottom}) overlaps the plot area (top ${plot.top}), where the curves are`);
    assert.ok(label.top >= title.bottom - 0.5 || label.left >= title.right || label.right <= title.left, "the label overlaps the title");
  });

  test("re-running the training cell trains nothing: the store is read, not written", async () => {
    const before = storeSnapshot(dirs.results);
    assert.ok(before.length > 0, "the store holds the demo");
    const index = await codeCellIndex(page, 'nb.run("demo")');
    await rerunCell(page, index, 120_000);
    const outputs = page.locator(".jp-CodeCell").nth(index).locator(".jp-OutputArea-output");
    assert.equal(await outputs.count(), 1);
    assert.match((await outputs.first().textContent()) ?? "", /^Nothing to train: the store \(.+\) holds 2 of 2 unit\(s\) of this config complete\./);
    assert.deepEqual(storeSnapshot(dirs.results), before, "files of the store changed");
  });

  test("re-run the setup cell, save: the file carries one plotly.js, the committed metadata, and strips to the committed file", async () => {
    await rerunCell(page, 0, 120_000);
    const before = fs.statSync(saved()).mtimeMs;
    await page.locator(".jp-Notebook").first().click({ position: { x: 5, y: 5 } });
    await page.keyboard.press("Control+s");
    await page.waitForFunction(() => document.querySelector(".lm-TabBar-tab.jp-mod-dirty") === null, null, { timeout: 30_000 });
    await page.waitForTimeout(500);
    assert.ok(fs.statSync(saved()).mtimeMs > before, "the notebook was saved");
    const nb = readNotebook(saved());
    const committedFile = path.join(ROOT, "notebooks", NOTEBOOK);
    const committed = readNotebook(committedFile);
    // Item 4: what the kernel reports is what is committed (tslab alone says "3.7.2" and adds codemirror_mode).
    assert.deepEqual(nb.metadata.language_info, committed.metadata.language_info);
    assert.deepEqual(nb.metadata.kernelspec, committed.metadata.kernelspec);
    // Item 1: plotly.js exactly once, in the setup cell's (new) output; every figure output relies on it.
    const code = nb.cells.filter((c) => c.cell_type === "code");
    const carriers = code.map((c, i) => [i, (c.outputs ?? []).filter((o) => joined(o.data?.["text/html"] as string | string[]).includes(LIBRARY_MARK)).length]).filter(([, n]) => n > 0);
    assert.deepEqual(carriers, [[0, 1]], "cells carrying plotly.js: [code cell index, copies]");
    const figures = code.flatMap((c) => (c.outputs ?? []).filter((o) => o.data?.["application/vnd.plotly.v1+json"] !== undefined));
    assert.equal(figures.length, FIGURE_TRACES.length);
    assert.ok(code.some((c) => typeof c.execution_count === "number"), "JupyterLab saved execution counts (what `make strip` removes)");
    // `make strip` on a copy returns it to the committed file, byte for byte.
    const copy = path.join(dirs.base, "stripped.ipynb");
    fs.copyFileSync(saved(), copy);
    const r = spawnSync(PYTHON, [path.join(ROOT, "tools", "jupyter", "strip_notebooks.py"), copy], { cwd: ROOT, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(copy, "utf8"), fs.readFileSync(committedFile, "utf8"));
  });

  test("stop and restart the server, reopen: the saved figures show", async () => {
    await context.close();
    assert.deepEqual(await server.stop(), [], "kernel processes that outlived the server");
    await server.start();
    await openNotebook();
    // JupyterLab renders outputs as they come into view. Its plotly renderer first shows the PNG
    // snapshot it saved with the figure, and draws the figure itself when the pointer enters it.
    const cells = page.locator(".jp-CodeCell");
    for (let i = 0; i < await cells.count(); i++) await cells.nth(i).scrollIntoViewIfNeeded();
    const figures = page.locator(".jp-OutputArea .jp-RenderedPlotly");
    assert.equal(await figures.count(), FIGURE_TRACES.length, "figure outputs after reopening");
    for (let i = 0; i < FIGURE_TRACES.length; i++) {
      const figure = figures.nth(i);
      await figure.scrollIntoViewIfNeeded();
      const snapshot = await figure.locator("img.plot-img").evaluate((img: any) => ({ width: img.naturalWidth as number, shown: img.style.display !== "none" }));
      assert.ok(snapshot.width > 100 || !snapshot.shown, `figure ${i}: a blank snapshot image`);
      await figure.hover();
      await page.waitForFunction((el: any) => el.querySelector(".main-svg") !== null, await figure.elementHandle(), { timeout: 30_000 });
    }
    const drawn = await drawnFigures(page, ".jp-OutputArea .js-plotly-plot");
    assert.deepEqual(drawn.map((d) => d.traces), FIGURE_TRACES, `figures drawn after reopening: ${JSON.stringify(drawn)}`);
    assert.equal(await page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').count(), 0);
    await context.close();
  });

  test("the saved file as HTML, nbconvert's default template and the report's, draws every figure offline", async () => {
    const html = path.join(dirs.base, "html");
    const env = labEnv(dirs);
    const plain = spawnSync(JUPYTER, ["nbconvert", "--to", "html", "--output-dir", path.join(html, "default"), saved()], { cwd: dirs.base, env, encoding: "utf8", timeout: 120_000 });
    assert.equal(plain.status, 0, plain.stderr);
    const report = spawnSync(PYTHON, [path.join(ROOT, "tools", "jupyter", "run_notebooks.py"), "--no-execute", "--out", path.join(html, "report"), saved()], { cwd: ROOT, env, encoding: "utf8", timeout: 120_000 });
    assert.equal(report.status, 0, report.stderr);
    for (const template of ["default", "report"]) {
      const file = path.join(html, template, NOTEBOOK.replace(/\.ipynb$/, ".html"));
      const offline = await browser.newContext();
      await offline.addInitScript(KEEP_NAMES_SHIM);
      const refused: string[] = [];
      // No network: only the file itself (the default template's CDN scripts are refused).
      await offline.route("**/*", (route) => (route.request().url().startsWith("file://") ? route.continue() : (refused.push(route.request().url()), route.abort())));
      const p = await offline.newPage();
      await p.goto(`file://${file}`);
      await p.waitForFunction((n) => document.querySelectorAll(".plotly-graph-div .main-svg").length >= n, FIGURE_TRACES.length, { timeout: 60_000 })
        .catch(() => undefined);
      const drawn = await drawnFigures(p, ".plotly-graph-div");
      await offline.close();
      assert.deepEqual(drawn.map((d) => d.traces), FIGURE_TRACES, `${template} template: figures drawn offline ${JSON.stringify(drawn)}`);
      assert.deepEqual(drawn.map((d) => d.data), FIGURE_TRACES);
      if (template === "default") assert.ok(refused.some((u) => /^https?:/.test(u)), "the default template asks for CDN scripts: the page really was offline");
    }
  });
});
