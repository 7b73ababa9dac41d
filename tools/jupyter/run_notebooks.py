#!/usr/bin/env python3
"""Execute the project's TypeScript notebooks headless and write executed copies (+ offline HTML).

    .venv/bin/python tools/jupyter/run_notebooks.py [--out reports] [--no-html | --no-execute] NOTEBOOK...

Runs each notebook top to bottom in a fresh kernel of the project's tslab kernelspec
(tools/jupyter/kernels, found through JUPYTER_PATH, set here), stops at the first cell error and
prints that cell's source, its stderr (where tslab puts TypeScript diagnostics) and the error, then
exits 1. The executed notebook is written even on failure, so the error can be looked at in context.

HTML uses the "offline" template (tools/jupyter/nbconvert/templates/offline): no CDN scripts; the
figures carry plotly.js themselves. The page title names the dataset and preset, read from the
metadata that src/viz/notebook_header.ts attaches to its header output ("SYNTHETIC" when so).
"""
from __future__ import annotations

import argparse
import html
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
JUPYTER_DIR = ROOT / "tools" / "jupyter"
# Must be set before jupyter_core computes its search paths.
os.environ["JUPYTER_PATH"] = os.pathsep.join([str(JUPYTER_DIR)] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p])
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError  # noqa: E402

sys.path.insert(0, str(JUPYTER_DIR))
from kernel_start import until_alive  # noqa: E402

KERNEL_NAME = "bias-init-tslab"
HEADER_KEY = "bias_init"


def text_of(output: dict) -> str:
    if output.get("output_type") == "stream":
        return "".join(output.get("text", ""))
    if output.get("output_type") == "error":
        return f"{output.get('ename', '')}: {output.get('evalue', '')}\n" + "\n".join(output.get("traceback", []))
    data = output.get("data", {})
    return "".join(data.get("text/plain", ""))


def describe_failure(path: Path, nb, error: Exception) -> str:
    """The failing cell with what tslab wrote to stderr (TypeScript diagnostics live only there)."""
    failing = None
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if any(o.get("output_type") == "error" or (o.get("output_type") == "stream" and o.get("name") == "stderr") for o in cell.get("outputs", [])):
            failing = (index, cell)
    lines = [f"FAILED: {path}"]
    if failing is None:
        lines.append(f"  {type(error).__name__}: {str(error).strip()[:4000]}")
        return "\n".join(lines)
    index, cell = failing
    lines.append(f"  cell {index} (code):")
    lines += ["    | " + line for line in cell.source.splitlines()]
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            lines.append("  stderr (TypeScript diagnostics, console.error):")
            lines += ["    " + line for line in text_of(output).rstrip().splitlines()]
        elif output.get("output_type") == "error":
            lines.append("  error:")
            lines += ["    " + line for line in text_of(output).rstrip().splitlines()]
    return "\n".join(lines)


def header_info(nb) -> dict:
    """What notebookSetup() reported (dataset, preset, backend), from its output's metadata."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            info = output.get("metadata", {}).get(HEADER_KEY)
            if isinstance(info, dict):
                return info
    return {}


def page_title(path: Path, info: dict) -> str:
    if not info:
        return path.stem
    dataset = "SYNTHETIC data (stand-in for CIFAR-10)" if info.get("dataset") == "synthetic" else str(info.get("dataset", "?"))
    return f"{path.stem} | {dataset} | preset {info.get('preset', '?')}"


def write_html(nb, target: Path, title: str) -> None:
    from nbconvert import HTMLExporter

    nb.metadata["title"] = title
    # tslab leaves execution_count null, which would print "In [ ]:" before every executed cell.
    exporter = HTMLExporter(template_name="offline", embed_images=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    target.write_text(body, encoding="utf-8")


def run_one(path: Path, out_dir: Path, html_out: bool, timeout: int | None, execute: bool = True) -> tuple[bool, float, dict]:
    nb = nbformat.read(path, as_version=4)
    if not execute:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_html(nb, out_dir / f"{path.stem}.html", page_title(path, header_info(nb)))
        return True, 0.0, header_info(nb)
    kernel = nb.metadata.get("kernelspec", {}).get("name", KERNEL_NAME)
    if kernel != KERNEL_NAME:
        print(f"{path}: kernelspec is '{kernel}', expected '{KERNEL_NAME}' (the project's tslab kernel)", file=sys.stderr)
        return False, 0.0, {}
    def execute_in_new_kernel() -> None:
        client = NotebookClient(nb, kernel_name=kernel, timeout=timeout, startup_timeout=120,
                                resources={"metadata": {"path": str(ROOT)}}, record_timing=True)
        client.execute()

    started = time.monotonic()
    ok = True
    try:
        # A kernel that dies before it is ready has run no cell: starting it again is safe.
        until_alive(execute_in_new_kernel, str(path))
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
        ok = False
        print(describe_failure(path, nb, error), file=sys.stderr)
    elapsed = time.monotonic() - started
    info = header_info(nb)
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / path.name)
    if html_out:
        write_html(nb, out_dir / f"{path.stem}.html", page_title(path, info))
    return ok, elapsed, info


def write_index(out_dir: Path, rows: list[tuple[Path, bool, float, dict]]) -> None:
    items = []
    for path, ok, elapsed, info in rows:
        title = html.escape(page_title(path, info))
        state = "ok" if ok else "FAILED"
        items.append(f'<li><a href="{html.escape(path.stem)}.html">{title}</a> ({state}, {elapsed:.0f} s)</li>')
    (out_dir / "index.html").write_text(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>bias-init lab report</title></head><body>\n"
        "<h1>bias-init lab: executed notebooks</h1>\n<ul>\n" + "\n".join(items) + "\n</ul>\n</body></html>\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "reports", help="folder for executed notebooks and HTML (default reports/)")
    parser.add_argument("--no-html", action="store_true", help="only write executed notebooks")
    parser.add_argument("--no-execute", action="store_true", help="only convert already executed notebooks to HTML")
    parser.add_argument("--timeout", type=int, default=-1, help="seconds per cell (default: no limit; training cells can take hours)")
    args = parser.parse_args()
    timeout = None if args.timeout < 0 else args.timeout
    rows = []
    for path in args.notebooks:
        if not path.is_file():
            print(f"{path}: no such notebook", file=sys.stderr)
            return 2
        print(f"== {path}", flush=True)
        ok, elapsed, info = run_one(path, args.out, not args.no_html, timeout, execute=not args.no_execute)
        rows.append((path, ok, elapsed, info))
        written = [] if args.no_execute else [str(args.out / path.name)]
        written += [] if args.no_html else [str(args.out / f"{path.stem}.html")]
        print(f"   {'ok' if ok else 'FAILED'} in {elapsed:.1f} s -> {', '.join(written)}", flush=True)
        if not ok:
            break
    if not args.no_html:
        write_index(args.out, rows)
    failed = [str(p) for p, ok, _, _ in rows if not ok]
    if failed:
        print(f"notebook execution failed: {', '.join(failed)} (executed copies with the error are in {args.out}/)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
