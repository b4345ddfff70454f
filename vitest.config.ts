// Test runner settings: long timeouts (kernels really run on CPU adapters and emulators), at
// most two workers (the size of the CI machine), and a closing `tests: N passed, N failed` line.
import { defineConfig } from 'vitest/config';
import SummaryLineReporter from './test/summary-reporter.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests import the compiler core directly: give it the file-system template source, as the
    // library and the CLI do.
    setupFiles: ['src/io/package-files.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    maxWorkers: 2,
    reporters: ['default', new SummaryLineReporter()],
  },
});
