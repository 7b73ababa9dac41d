#!/usr/bin/env bash
# Starts the project's tslab (node_modules/tslab) as a Jupyter kernel FROM THE REPOSITORY ROOT.
#
# Why the root: tslab compiles cells with rootDir = its working directory, and Jupyter starts a
# kernel in the notebook's folder, so `import ... from "../src/x"` in notebooks/ fails with
# "File '.../src/x.ts' is not under 'rootDir'". Started here, notebooks import "./src/notebook",
# and relative paths (data/, results/, reports/) mean the same as for the CLI and `make`.
set -euo pipefail
connection_file="${1:?usage: launch.sh CONNECTION_FILE (Jupyter passes it)}"
# This file is <root>/tools/jupyter/kernels/bias-init-tslab/launch.sh (possibly reached via a symlink).
here="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
tslab="$root/node_modules/tslab/dist/main.js"
if [[ ! -f "$tslab" ]]; then
  echo "bias-init kernel: $tslab is missing; run 'make setup' (npm ci) in $root" >&2
  exit 1
fi
cd "$root"
# TF's C++ logs (native backends): TF_CPP_MIN_LOG_LEVEL=2 keeps INFO and WARNING lines out, and
# the absl lines logged before absl::InitializeLog() are filtered (quiet-tf-log.sh says why).
# The GPU build's CUDA library paths (its cuda-env.sh), when that build exists (docs/native.md).
source "$root/tools/native/engine-env.sh"
source "$root/tools/native/quiet-tf-log.sh"
exec node "$here/start_tslab.js" "$connection_file"
