import { defineConfig } from 'vitest/config';

/** The service tests that also run on PostgreSQL (CLOUDPHONE_TEST_ENGINE picks the engine of their fixture). */
const onPostgres = [
  'server/test/domains/*.test.ts',
  'server/test/leases/*.test.ts',
  'server/test/devices/{inventory,hosts}.test.ts',
  'server/test/apps/{service,install}.test.ts',
];

export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    // One private PostgreSQL per run, started by the first test that asks for a database.
    globalSetup: ['server/test/helpers/postgres-setup.ts'],
    // A server started by a test never picks up an ADB server the machine happens to run on 127.0.0.1:5037.
    env: { CLOUDPHONE_LOCAL_ADB: 'off' },
    projects: [
      {
        extends: true,
        test: { name: 'sqlite', include: ['{openapi,sdk,cli,server,examples,bench}/test/**/*.test.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'postgres',
          include: onPostgres,
          env: { CLOUDPHONE_LOCAL_ADB: 'off', CLOUDPHONE_TEST_ENGINE: 'postgres' },
        },
      },
    ],
  },
});
