#!/usr/bin/env bash
# The test command: set up, type-check, run the whole vitest suite, and print a plain
# "N passed, N failed, N skipped" line from vitest's JSON results. Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-chromium || exit 1
npx tsc -p tsconfig.check.json || { echo "0 passed, 1 failed (type check)"; exit 1; }
results="$(mktemp -t emlab-vitest-XXXXXX.json)"
npx vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@"
status=$?
node scripts/vitest-summary.cjs "$results" || status=1
rm -f "$results"
exit "$status"
