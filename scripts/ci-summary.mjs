// CI's closing lines: one "N passed, N failed, N skipped" for vitest and the
// Python suites together, then each failed test by file and name with the
// first line of why. They come last so a log cut to its tail still says what
// failed (vitest's own failure report is printed before the Python suites').
// A suite that wrote no results counts as one failure.
//
// Usage: node scripts/ci-summary.mjs VITEST_JSON PYTHON_JSON PYTHON39_JSON yes|no
import fs from 'node:fs';
import path from 'node:path';

const [vitestFile, pythonFile, python39File, ran39] = process.argv.slice(2);
const read = (file) => (fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : null);
const vitest = read(vitestFile);
const suites = [
  { label: 'python', results: read(pythonFile), ran: true },
  { label: 'python3.9', results: read(python39File), ran: ran39 === 'yes' },
];

const firstLine = (text) => String(text ?? '').replace(/\x1b\[[0-9;]*m/g, '').split('\n').find((line) => line.trim() !== '')?.trim().slice(0, 300) ?? '';
const failures = [];
if (vitest === null) {
  failures.push(`vitest: wrote no results (${vitestFile})`);
} else {
  for (const file of vitest.testResults) {
    const where = path.relative(process.cwd(), file.name);
    const failedTests = file.assertionResults.filter((test) => test.status === 'failed');
    for (const test of failedTests) failures.push(`${where} > ${test.fullName}: ${firstLine(test.failureMessages[0])}`);
    // A file that failed outside any test (an import error, a hook) has no failed test to name.
    if (file.status === 'failed' && failedTests.length === 0) failures.push(`${where}: ${firstLine(file.message)}`);
  }
}
for (const { label, results, ran } of suites) {
  if (!ran) continue;
  if (results === null) failures.push(`${label}: wrote no results`);
  else for (const failure of results.failures ?? []) failures.push(`${label} ${failure.name}: ${failure.message}`);
}

const passed = (vitest?.numPassedTests ?? 0) + suites.reduce((sum, s) => sum + (s.results?.passed ?? 0), 0);
const failed =
  (vitest ? vitest.numFailedTests : 1) + suites.reduce((sum, s) => sum + (s.ran ? (s.results ? s.results.failed : 1) : 0), 0);
const skipped =
  (vitest ? vitest.numPendingTests + vitest.numTodoTests : 0) + suites.reduce((sum, s) => sum + (s.results?.skipped ?? 0), 0);
if (failures.length > 0) {
  console.log('ci: what failed:');
  for (const failure of failures) console.log(`  ${failure}`);
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
