#!/usr/bin/env bash
# Registers the project's tslab kernel with the project's Jupyter only (never system-wide): a
# relative symlink .venv/share/jupyter/kernels/bias-init-tslab -> tools/jupyter/kernels/bias-init-tslab,
# so a plain `.venv/bin/jupyter lab` lists it. `make lab`, `make report` and the tests also find it
# through JUPYTER_PATH=tools/jupyter, without this link. Idempotent; called by `make setup`.
set -euo pipefail
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"
kernels="$root/.venv/share/jupyter/kernels"
require -d "$root/.venv" "install-kernel: $root/.venv is missing: create it first (make python-deps)"
mkdir -p "$kernels"
ln -sfn ../../../../tools/jupyter/kernels/bias-init-tslab "$kernels/bias-init-tslab"
test -f "$kernels/bias-init-tslab/kernel.json" || { echo "install-kernel: the link $kernels/bias-init-tslab does not resolve" >&2; exit 1; }
echo "kernel 'bias-init-tslab' registered in $kernels"
