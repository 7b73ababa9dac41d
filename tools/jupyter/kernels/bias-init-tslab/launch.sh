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
# TF's C++ logs (native backends): TF_CPP_MIN_LOG_LEVEL=2 keeps INFO and WARNING lines out...
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
# The GPU build's CUDA library paths (its cuda-env.sh), when that build exists (docs/native.md).
source "$root/tools/native/engine-env.sh"
# ...except those TensorFlow 2.21 logs through absl before absl::InitializeLog() is called, which
# go straight to file descriptor 2 whatever TF_CPP_MIN_LOG_LEVEL, GLOG_minloglevel or
# ABSL_MIN_LOG_LEVEL say (measured): "WARNING: All log messages before absl::InitializeLog() ..."
# and "I0000 ... port.cc:153] oneDNN custom operations are on ...", at every kernel start. The
# kernel's stderr (the Jupyter server's log) goes through a filter that drops absl INFO lines, and
# WARNING lines too at level 2 or more, as TF_CPP_MIN_LOG_LEVEL means; errors and everything else
# pass. The filter ignores SIGINT, which Jupyter sends to the kernel's process group to interrupt.
absl_levels="I"
[[ "$TF_CPP_MIN_LOG_LEVEL" =~ ^[2-9]$ ]] && absl_levels="IW"
if [[ "$TF_CPP_MIN_LOG_LEVEL" =~ ^[1-9]$ ]]; then
  exec 2> >(trap '' INT; exec grep --line-buffered -v -E \
    "^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\$|^[$absl_levels][0-9]{4} [0-9:.]+ +[0-9]+ [^ ]+:[0-9]+\] " >&2)
fi
exec node "$here/start_tslab.js" "$connection_file"
