#!/usr/bin/env bash
# `make lab`: JupyterLab from .venv with the project's kernel and the project's JupyterLab settings,
# serving the repository. Extra arguments go to `jupyter lab` (the browser test, test/lab.test.ts,
# serves a temporary folder on its own port this way).
#   - JUPYTER_PATH=tools/jupyter: the kernelspec tools/jupyter/kernels/bias-init-tslab.
#   - --LabApp.app_settings_dir=tools/jupyter/lab/settings: its overrides.json turns the Jupyter news
#     feed off (no "Would you like to get notified about official Jupyter news?" toast, no request to
#     the news site). Overrides only change defaults: the user's own settings (~/.jupyter) still win
#     and are not written to.
set -euo pipefail
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"
jupyter="$root/.venv/bin/jupyter"
require -x "$jupyter" "lab: $jupyter is missing: run 'make setup' (it creates .venv with JupyterLab)"
export JUPYTER_PATH="$root/tools/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
# Serves the repository unless told otherwise (Jupyter refuses a second --ServerApp.root_dir).
serve=("--ServerApp.root_dir=$root")
for arg in "$@"; do [[ "$arg" == --ServerApp.root_dir=* ]] && serve=(); done
exec "$jupyter" lab "${serve[@]}" --LabApp.app_settings_dir="$root/tools/jupyter/lab/settings" "$@"
