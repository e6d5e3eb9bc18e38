#!/usr/bin/env bash
# The peer suite (npm run test:peer): live comparisons with transformers and PEFT in the peer
# environment (scripts/peer-env.sh creates it; without it every peer test is skipped with the reason).
# Runs on the addon that EMLAB_NATIVE selects (default build/). Prints "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
results="$(mktemp -t emlab-vitest-XXXXXX.json)"
npx vitest run -c vitest.peer.config.ts --reporter=default --reporter=json --outputFile.json="$results" "$@"
status=$?
node scripts/vitest-summary.cjs "$results" || status=1
rm -f "$results"
exit "$status"
