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
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  // Files that failed without a failing test (e.g. an import error) count once each.
  const brokenFiles = (r.testResults || []).filter((f) => f.status === "failed" && !(f.assertionResults || []).some((a) => a.status === "failed")).length;
  const failed = r.numFailedTests + brokenFiles;
  console.log(`${r.numPassedTests} passed, ${failed} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
  if (r.numTotalTests === 0) { console.log("no tests ran"); process.exit(1); }
  process.exit(failed > 0 ? 1 : 0);
' "$results" || status=1
rm -f "$results"
exit "$status"
