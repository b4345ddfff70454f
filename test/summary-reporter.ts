// A vitest reporter that ends every run with one plain line, alone on its line:
//   tests: N passed, N failed
// (after the default reporter's output), so `npm test`, and CI through it, closes with the counts.
// A test file that fails without a failing test (an import error, a failing beforeAll) and an
// unhandled error each count as one failure, so the line never says 0 failed for a failed run.

import type { Reporter, SerializedError, TestModule } from 'vitest/node';

export default class SummaryLineReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>): void {
    let passed = 0;
    let failed = unhandledErrors.length;
    for (const module of testModules) {
      let failedTests = 0;
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failedTests++;
      }
      failed += failedTests > 0 ? failedTests : module.state() === 'failed' ? 1 : 0;
    }
    process.stdout.write(`\ntests: ${passed} passed, ${failed} failed\n`);
  }
}
