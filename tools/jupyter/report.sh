#!/usr/bin/env bash
# `make report`: executes every notebook headless in a fresh tslab kernel, in order, and writes the
# executed notebooks and self-contained offline HTML (plus index.html) to reports/ (BIAS_INIT_REPORTS).
# Stops at the first failing cell and prints it with its TypeScript diagnostic (tslab writes those
# only to the cell's stderr). Training happens only for what the results store lacks, so running it
# again after a finished run only re-renders.
#   tools/jupyter/report.sh [NOTEBOOK...]     (default: notebooks/*.ipynb)
set -euo pipefail
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"
cd "$root"
python="$root/.venv/bin/python"
require -x "$python" "report: $python is missing: run 'make setup' (it creates .venv with JupyterLab and nbconvert)"
require -f "$root/node_modules/tslab/dist/main.js" "report: node_modules/tslab is missing: run 'make setup' (npm ci)"
if [[ $# -gt 0 ]]; then
  notebooks=("$@")
else
  shopt -s nullglob
  notebooks=(notebooks/*.ipynb)
fi
if [[ ${#notebooks[@]} -eq 0 ]]; then
  echo "report: no notebooks found in notebooks/" >&2
  exit 1
fi
exec "$python" "$root/tools/jupyter/run_notebooks.py" --out "${BIAS_INIT_REPORTS:-reports}" "${notebooks[@]}"
