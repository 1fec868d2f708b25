import { availableParallelism } from 'node:os';
import { configDefaults, defineConfig } from 'vitest/config';

/** Tests of what only PostgreSQL has, left out of the sqlite project: several server nodes on one database. */
const postgresOnly = ['server/test/cluster/*.e2e.test.ts'];

/**
 * The tests that also run on PostgreSQL, CLOUDPHONE_TEST_ENGINE picking the engine of their databases: each service
 * test and each server a test starts gets a schema of its own.
 */
const onPostgres = [
  'server/test/**/*.integration.test.ts',
  // The server's end-to-end tests; the virtual device's own (server/test/virtual-device) use no database.
  'server/test/devices/*.e2e.test.ts',
  'server/test/domains/*.test.ts',
  'server/test/leases/*.test.ts',
  'server/test/devices/{inventory,hosts}.test.ts',
  'server/test/apps/{service,install}.test.ts',
  'server/test/platform/{idempotency,infra}.test.ts',
  // Billing's service scenarios; its pure modules (money, calendar, documents) use no database.
  'server/test/billing/{scenarios,properties}.test.ts',
  'server/test/notifications/**/*.test.ts',
  ...postgresOnly,
];

/** Left out of the postgres project. */
const notOnPostgres = [
  // The commands on the SQLite file in a data directory (backup, migrate); postgres-server covers them on PostgreSQL.
  'server/test/platform/cli.integration.test.ts',
  // These bring their own PostgreSQL whatever the engine, and so already run on it in the sqlite project.
  'server/test/platform/{postgres-server,database-outage,copy-data}.integration.test.ts',
];

export default defineConfig({
  test: {
    pool: 'forks',
    // One more test file than cores: many files spend most of their time waiting on servers, devices and timers
    // (a lease expiring while a server is down, a minute of real-time budget), and a waiting file need not hold a
    // core.
    maxWorkers: availableParallelism() + 1,
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
        test: {
          name: 'sqlite',
          include: ['{openapi,sdk,cli,server,examples,bench}/test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...postgresOnly],
        },
      },
      {
        extends: true,
        test: {
          name: 'postgres',
          include: onPostgres,
          exclude: [...configDefaults.exclude, ...notOnPostgres],
          env: { CLOUDPHONE_LOCAL_ADB: 'off', CLOUDPHONE_TEST_ENGINE: 'postgres' },
        },
      },
    ],
  },
});
