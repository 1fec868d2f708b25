import type { Kysely } from 'kysely';
import type { DB } from '../db/schema.js';
import type { FailureCount, ThrottleKeys } from './throttle.js';

/** The failure counts under a login attempt's keys. */
export async function readFailureCounts(
  db: Kysely<DB>,
  keys: ThrottleKeys,
): Promise<{ pair: FailureCount | undefined; address: FailureCount | undefined }> {
  const rows = await db
    .selectFrom('login_failures')
    .select(['key', 'failures', 'last_failed_at'])
    .where('key', 'in', [keys.pair, keys.address])
    .execute();
  const count = (key: string): FailureCount | undefined => {
    const row = rows.find((r) => r.key === key);
    return row === undefined ? undefined : { failures: row.failures, lastFailedAt: row.last_failed_at };
  };
  return { pair: count(keys.pair), address: count(keys.address) };
}

/** Sets the counts after a failure at `at`, and forgets every count whose last failure is before `forgetBefore`. */
export async function recordFailure(
  db: Kysely<DB>,
  counts: { key: string; failures: number }[],
  at: string,
  forgetBefore: string,
): Promise<void> {
  await db.deleteFrom('login_failures').where('last_failed_at', '<', forgetBefore).execute();
  for (const { key, failures } of counts) {
    await db
      .insertInto('login_failures')
      .values({ key, failures, last_failed_at: at })
      .onConflict((oc) => oc.column('key').doUpdateSet({ failures, last_failed_at: at }))
      .execute();
  }
}

/** Forgets a key's failures (a successful login forgets its pair's). */
export async function clearFailures(db: Kysely<DB>, key: string): Promise<void> {
  await db.deleteFrom('login_failures').where('key', '=', key).execute();
}
