import { sql, type Kysely } from 'kysely';
import { bigintType } from '../dialect.js';

/**
 * Billing: plans (prices, included minutes, quotas) and each user's, the lease's project and each leased device's
 * billing class and metering position, usage records, budgets and the thresholds they reached, invoices, and the
 * billing periods closed.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const money = bigintType(db);
  await db.schema
    .createTable('plans')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('description', 'text')
    .addColumn('currency', 'text', (c) => c.notNull())
    .addColumn('monthly_fee', money, (c) => c.notNull().defaultTo(0))
    .addColumn('prices', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('default_price', money, (c) => c.notNull().defaultTo(0))
    .addColumn('included_minutes', money, (c) => c.notNull().defaultTo(0))
    .addColumn('max_concurrent_devices', 'integer')
    .addColumn('max_lease_ttl_seconds', 'integer')
    .addColumn('minutes_per_period', money)
    .addColumn('is_default', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  // At most one default plan; the service never leaves none.
  await db.schema
    .createIndex('plans_one_default')
    .on('plans')
    .column('is_default')
    .unique()
    .where(sql.ref('is_default'), '=', 1)
    .execute();
  await db.schema.alterTable('users').addColumn('plan_id', 'text', (c) => c.references('plans.id')).execute();
  await db.schema.alterTable('leases').addColumn('project', 'text').execute();
  await db.schema.alterTable('lease_devices').addColumn('billing_class', 'text').execute();
  // Where the device time not yet in a usage record starts (the grant, or the last cut).
  await db.schema.alterTable('lease_devices').addColumn('metered_from', 'text').execute();

  // No foreign keys to users, leases or devices: usage outlives them.
  await db.schema
    .createTable('usage_records')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('lease_id', 'text', (c) => c.notNull())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('project', 'text')
    .addColumn('billing_class', 'text', (c) => c.notNull())
    .addColumn('plan_id', 'text', (c) => c.notNull())
    .addColumn('currency', 'text', (c) => c.notNull())
    .addColumn('price_per_minute', money, (c) => c.notNull())
    .addColumn('started_at', 'text', (c) => c.notNull())
    .addColumn('ended_at', 'text', (c) => c.notNull())
    .addColumn('start_s', money, (c) => c.notNull())
    .addColumn('end_s', money, (c) => c.notNull())
    .addColumn('seconds', money, (c) => c.notNull())
    .addColumn('included_seconds', money, (c) => c.notNull())
    .addColumn('day', 'text', (c) => c.notNull())
    .addColumn('period', 'text', (c) => c.notNull())
    .addColumn('recorded_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('usage_records_user_period').on('usage_records').columns(['user_id', 'period']).execute();
  await db.schema.createIndex('usage_records_project_period').on('usage_records').columns(['project', 'period']).execute();
  await db.schema.createIndex('usage_records_day').on('usage_records').columns(['day']).execute();
  await db.schema.createIndex('usage_records_lease').on('usage_records').columns(['lease_id']).execute();

  await db.schema
    .createTable('budgets')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('scope', 'text', (c) => c.notNull().check(sql`scope in ('user', 'project')`))
    // The user's id or the project's name.
    .addColumn('target', 'text', (c) => c.notNull())
    .addColumn('currency', 'text', (c) => c.notNull())
    .addColumn('amount', money, (c) => c.notNull())
    .addColumn('thresholds', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('budgets_scope_target', ['scope', 'target'])
    .execute();
  await db.schema
    .createTable('budget_alerts')
    .addColumn('budget_id', 'text', (c) => c.notNull().references('budgets.id').onDelete('cascade'))
    .addColumn('period', 'text', (c) => c.notNull())
    .addColumn('threshold', 'integer', (c) => c.notNull())
    .addColumn('reached_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('budget_alerts_pk', ['budget_id', 'period', 'threshold'])
    .execute();

  await db.schema
    .createTable('invoices')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('number', money, (c) => c.unique())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('username', 'text', (c) => c.notNull())
    .addColumn('period', 'text', (c) => c.notNull())
    .addColumn('period_start', 'text', (c) => c.notNull())
    .addColumn('period_end', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('draft', 'finalized', 'void')`))
    .addColumn('currency', 'text', (c) => c.notNull())
    .addColumn('plan_id', 'text', (c) => c.notNull())
    .addColumn('plan_name', 'text', (c) => c.notNull())
    .addColumn('lines', 'text', (c) => c.notNull())
    .addColumn('usage_seconds', money, (c) => c.notNull())
    .addColumn('total', money, (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('finalized_at', 'text')
    .addColumn('voided_at', 'text')
    .addColumn('void_reason', 'text')
    .addUniqueConstraint('invoices_user_period', ['user_id', 'period'])
    .execute();
  await db.schema.createIndex('invoices_period').on('invoices').columns(['period', 'id']).execute();

  await db.schema
    .createTable('billing_periods')
    .addColumn('period', 'text', (c) => c.primaryKey())
    .addColumn('closed_at', 'text', (c) => c.notNull())
    .execute();
}
