#!/usr/bin/env bash
# Runs one of the project's TypeScript entry points as a single compiled JavaScript file:
#   bash tools/run-ts.sh src/cli.ts [its arguments...]
# The entry point and everything it imports from src/ are bundled by esbuild (tsx's own compiler)
# into dist/<entry>.cjs, which plain `node` then runs; packages stay in node_modules. Every call
# compiles again (about 0.2 s), so what runs is always the source as it is now, and two calls at once
# each rename a finished file into place. Against `node --import tsx` (the tests' runner and the
# notebooks' route to src/), a process holds ~85 MB less before the engine loads: tsx's loader
# thread, its compiled sources and source maps (docs/performance.md, item 23).
# BIAS_INIT_DIST_DIR: where the compiled files go (default: dist/ in the repository; tests use a
# temporary folder).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ $# -lt 1 || $1 != *.ts ]]; then
  echo "run-ts.sh: usage: bash tools/run-ts.sh <entry point .ts, relative to the repository> [arguments...]" >&2
  exit 2
fi
entry=$1
shift
if [[ ! -f $repo/$entry ]]; then
  echo "run-ts.sh: $repo/$entry does not exist; name an entry point such as src/cli.ts" >&2
  exit 2
fi
esbuild=$repo/node_modules/.bin/esbuild
if [[ ! -x $esbuild ]]; then
  echo "run-ts.sh: $esbuild is missing; run \`make setup\` (npm ci) first" >&2
  exit 2
fi
dist=${BIAS_INIT_DIST_DIR:-$repo/dist}
out=$dist/${entry%.ts}.cjs
mkdir -p "$(dirname "$out")"
tmp=$out.$(hostname).$$.tmp
# The repository's path as a JavaScript string, for util/runner.ts.
root_js=${repo//\\/\\\\}
root_js=\"${root_js//\"/\\\"}\"
# --packages=external: node_modules are required at run time, as under tsx (one @tensorflow/tfjs
# instance for this code and the native binding). No minifying: a stack trace stays readable.
if ! "$esbuild" "$repo/$entry" --bundle --platform=node --target=node20 --format=cjs --packages=external \
    --define:BIAS_INIT_SOURCE_ROOT="$root_js" --log-level=warning --outfile="$tmp"; then
  rm -f "$tmp"
  echo "run-ts.sh: esbuild could not compile $entry (above); \`make typecheck\` names the error in full" >&2
  exit 2
fi
mv -f "$tmp" "$out"
# Packages resolve from the repository's node_modules wherever the compiled file lies.
# --heap-growing-percent=20: V8 collects its old generation when it has grown 20% past what the last
# collection kept, where its own rule let it grow ~4x (24 MB live, 97 MB held before collecting):
# ~80 MB less peak memory at 32x32, four more collections of ~6 ms in 30 s (performance.md item 24).
NODE_PATH=$repo/node_modules${NODE_PATH:+:$NODE_PATH} exec node --heap-growing-percent=20 "$out" "$@"
