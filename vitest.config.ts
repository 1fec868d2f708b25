import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{openapi,sdk,cli,server,examples,bench}/test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    // One private PostgreSQL per run, started by the first test that asks for a database.
    globalSetup: ['server/test/helpers/postgres-setup.ts'],
    // A server started by a test never picks up an ADB server the machine happens to run on 127.0.0.1:5037.
    env: { CLOUDPHONE_LOCAL_ADB: 'off' },
  },
});
