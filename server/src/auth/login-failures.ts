import type { Kysely } from 'kysely';
import { lockForTransaction } from '../db/dialect.js';
import type { DB } from '../db/schema.js';
import type { FailureCount, ThrottleKeys } from './throttle.js';

/**
 * Holds the counts of the attempt's source address (its pairs' included) until the transaction `trx` ends: the
 * attempts from one address are judged one at a time, each on the counts the others left.
 */
export async function lockFailureCounts(trx: Kysely<DB>, keys: ThrottleKeys): Promise<void> {
  await lockForTransaction(trx, `login_failures ${keys.address}`);
}

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

/**
 * Counts a failure at `at` under both keys, forgetting first every count whose last failure is at or before
 * `forgetBefore`; returns the new counts. Each count goes up in one statement, so failures recorded at the same time
 * are all counted.
 */
export async function recordFailure(
  db: Kysely<DB>,
  keys: ThrottleKeys,
  at: string,
  forgetBefore: string,
): Promise<{ pair: number; address: number }> {
  await db.deleteFrom('login_failures').where('last_failed_at', '<=', forgetBefore).execute();
  const increment = async (key: string): Promise<number> => {
    const row = await db
      .insertInto('login_failures')
      .values({ key, failures: 1, last_failed_at: at })
      .onConflict((oc) =>
        oc.column('key').doUpdateSet((eb) => ({ failures: eb('login_failures.failures', '+', 1), last_failed_at: at })),
      )
      .returning('failures')
      .executeTakeFirstOrThrow();
    return row.failures;
  };
  const pair = await increment(keys.pair);
  return { pair, address: await increment(keys.address) };
}

/** Forgets a key's failures (a successful login forgets its pair's). */
export async function clearFailures(db: Kysely<DB>, key: string): Promise<void> {
  await db.deleteFrom('login_failures').where('key', '=', key).execute();
}
