import { defineConfig } from 'vitest/config';
import { ReliabilityReporter } from './test/support/reliabilityReporter.ts';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 180_000,
    // opencode processes are heavy (~350 MB, ~1 s each): two test files at a time on 2 cores.
    maxWorkers: 2,
    fileParallelism: true,
    // The built CLI (dist/) that test/e2e/harness.ts runs in-process is loaded by Node itself, as
    // bin/sessmig.js loads it: not transformed by vitest (measured ~3 s a test file on this machine).
    server: { deps: { external: [/\/dist\//] } },
    // docs/RELIABILITY.md is rendered from what the fault tests record (test/support/reliability.ts).
    reporters: ['default', new ReliabilityReporter()],
  },
});
