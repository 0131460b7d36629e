import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 180_000,
    // opencode processes are heavy (~350 MB, ~1 s each): two test files at a time on 2 cores.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
