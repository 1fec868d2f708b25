import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{openapi,sdk,cli,server,examples,bench}/test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
