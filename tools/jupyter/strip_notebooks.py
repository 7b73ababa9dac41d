#!/usr/bin/env python3
"""Return notebooks to their committed form: no outputs, no execution counts, canonical metadata.

    .venv/bin/python tools/jupyter/strip_notebooks.py [--check] [NOTEBOOK...]   (default: notebooks/*.ipynb)

`make strip` runs it on notebooks/. What it undoes is what running and saving a notebook adds:
cell outputs and execution counts, the per-cell metadata JupyterLab and nbclient record while
running (execution timing, scroll/collapse state), and a language_info other than the one the
project's kernel reports (tools/jupyter/kernels/bias-init-tslab/start_tslab.js: TypeScript with the
version tslab compiles with, no codemirror_mode; tslab itself says "3.7.2"). The file is written
the way Jupyter writes it (nbformat: sorted keys, one-space indent), so a notebook saved by
JupyterLab and stripped is byte for byte the committed one.

--check writes nothing and exits 1 listing the notebooks that are not in that form (the test suite
runs it on notebooks/).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
# Cell metadata that running or viewing a notebook writes; authored metadata (tags, ...) stays.
RUN_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")


def typescript_version() -> str:
    """The TypeScript version tslab compiles with (what the project's kernel reports)."""
    for base in (ROOT / "node_modules", ROOT / "node_modules" / "tslab" / "node_modules"):
        package = base / "@tslab" / "typescript-for-tslab" / "package.json"
        if package.is_file():
            return json.loads(package.read_text(encoding="utf-8"))["version"]
    raise SystemExit("strip_notebooks: node_modules/@tslab/typescript-for-tslab is missing; run 'make setup' (npm ci)")


def language_info() -> dict:
    return {"name": "typescript", "file_extension": ".ts", "mimetype": "text/typescript", "version": typescript_version()}


def stripped(text: str, info: dict) -> str:
    nb = nbformat.reads(text, as_version=4)
    for cell in nb.cells:
        for key in RUN_METADATA:
            cell.metadata.pop(key, None)
        jupyter = cell.metadata.get("jupyter")
        if isinstance(jupyter, dict):
            jupyter.pop("outputs_hidden", None)
            if not jupyter:
                del cell.metadata["jupyter"]
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata["language_info"] = nbformat.from_dict(info)
    return nbformat.writes(nb, version=4) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a notebook is not in its committed form")
    args = parser.parse_args()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    info = language_info()
    differ = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        clean = stripped(text, info)
        if clean == text:
            continue
        differ.append(path)
        if not args.check:
            path.write_text(clean, encoding="utf-8")
            print(f"stripped {path}")
    if args.check and differ:
        print("not in their committed form (outputs, execution counts or run metadata; run `make strip`): " +
              ", ".join(str(p) for p in differ), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
