// Test runner settings: long timeouts (kernels really run on CPU adapters and emulators) and at
// most two workers, the size of the CI machine.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    maxWorkers: 2,
    reporters: ['default'],
  },
});
