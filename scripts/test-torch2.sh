#!/usr/bin/env bash
# The whole suite again on pip's libtorch 2.x (CUDA wheel; its CUDA code paths are compiled here even on a
# CPU-only machine): creates/reuses the peer environment (scripts/peer-env.sh), builds the addon into
# build-torch2/ against that torch, and runs vitest with EMLAB_NATIVE pointing at it. Prints the same
# plain "N passed, N failed, N skipped" line as scripts/test.sh and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
env_dir="$(bash scripts/peer-env.sh)" || { echo "0 passed, 1 failed (peer environment)"; exit 1; }
echo "test-torch2: building build-torch2/ against $("$env_dir/bin/python" -c 'import torch; print(torch.__version__)')"
PYTHON="$env_dir/bin/python" LIBTORCH_USE_PYTORCH=1 npx cmake-js compile --out build-torch2 >/tmp/emlab-native-build-torch2.log 2>&1 ||
  { cat /tmp/emlab-native-build-torch2.log; echo "0 passed, 1 failed (libtorch 2.x build)"; exit 1; }
export EMLAB_NATIVE="$PWD/build-torch2/Release/emlab.node"
node -e 'const a = require(process.env.EMLAB_NATIVE); console.log(`test-torch2: emlab on libtorch ${a.torchVersion}, CUDA paths compiled: ${a.builtWithCuda}`); if (!a.builtWithCuda) process.exit(1)' ||
  { echo "0 passed, 1 failed (libtorch 2.x build without CUDA paths)"; exit 1; }
results="$(mktemp -t emlab-vitest-XXXXXX.json)"
npx vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@"
status=$?
node scripts/vitest-summary.cjs "$results" || status=1
rm -f "$results"
exit "$status"
