// Prints the plain "N passed, N failed, N skipped" line from a vitest JSON report; exits 1 on any failure
// or when no test ran. Files that failed without a failing test (e.g. an import error) count once each.
const r = JSON.parse(require("node:fs").readFileSync(process.argv[2], "utf8"));
const brokenFiles = (r.testResults || []).filter((f) => f.status === "failed" && !(f.assertionResults || []).some((a) => a.status === "failed")).length;
const failed = r.numFailedTests + brokenFiles;
console.log(`${r.numPassedTests} passed, ${failed} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
if (r.numTotalTests === 0) {
  console.log("no tests ran");
  process.exit(1);
}
process.exit(failed > 0 ? 1 : 0);
