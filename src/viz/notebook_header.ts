// The bold header each notebook's first cell shows: what it runs on (preset, engine, data, store),
// red when the data is the synthetic stand-in. Its output metadata names the dataset, so
// tools/jupyter/run_notebooks.py can put it in the report's page title.
import { describeSetting, ENVIRONMENT, ExperimentConfig } from "../config";
import { BackendInfo, backendLine } from "../engine/backend";
import type { PreparedData } from "../data/prepare";
import { showBundle } from "./kernel_output";
import { escapeHtml } from "./html_output";

/** The metadata key of the header output; tools/jupyter/run_notebooks.py reads it for page titles. */
export const HEADER_METADATA_KEY = "bias_init";

export interface HeaderFacts {
  title: string;
  config: ExperimentConfig;
  backend: BackendInfo;
  data: PreparedData;
  resultsDir: string;
}

export function showNotebookHeader(h: HeaderFacts): void {
  const { title, config, backend, data } = h;
  const dataLine = data.dataset === "synthetic" ? `DATA: SYNTHETIC stand-in, NOT CIFAR-10. ${data.note}` : `DATA: CIFAR-10. ${data.note}`;
  const resultsEnv: keyof typeof ENVIRONMENT = "BIAS_INIT_RESULTS";
  const lines = [
    title,
    `preset: ${config.preset} (env BIAS_INIT_PRESET): ${describeSetting(config)}`,
    backendLine(backend),
    dataLine,
    `results store: ${h.resultsDir}/ (env ${resultsEnv})`,
  ];
  const warn = data.dataset === "synthetic";
  const html = `<div style="border-left:6px solid ${warn ? "#e63946" : "#1d3557"};padding:4px 10px;margin:4px 0">` +
    `<div style="font-size:1.2em;font-weight:700">${escapeHtml(title)}</div>` +
    `<div>preset <b>${escapeHtml(config.preset)}</b>: ${escapeHtml(describeSetting(config))}</div>` +
    `<div><code>${escapeHtml(backendLine(backend))}</code></div>` +
    `<div style="${warn ? "color:#e63946;font-weight:700" : "font-weight:600"}">${escapeHtml(dataLine)}</div>` +
    `<div>results store: <code>${escapeHtml(h.resultsDir)}/</code></div></div>`;
  showBundle({ "text/html": html, "text/plain": lines.join("\n") }, {
    [HEADER_METADATA_KEY]: { title, preset: config.preset, dataset: data.dataset, backend: backend.kind, positiveRate: data.positiveRate },
  });
}
