import { sql, type Kysely } from 'kysely';

/** Device hosts, the device inventory, leases and the devices each lease holds. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('hosts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('type', 'text', (c) => c.notNull().check(sql`type in ('adb_server', 'adb_device', 'virtual')`))
    .addColumn('address', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('origin', 'text', (c) => c.notNull().check(sql`origin in ('config', 'api')`))
    .addColumn('draining', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('hosts_type_address', ['type', 'address'])
    .execute();

  await db.schema
    .createTable('devices')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('host_id', 'text', (c) => c.notNull().references('hosts.id').onDelete('cascade'))
    .addColumn('serial', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('physical', 'emulator', 'network', 'virtual')`))
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('online', 'offline', 'unauthorized')`))
    .addColumn('maintenance', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('resetting', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('labels', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('properties', 'text')
    .addColumn('battery', 'text')
    .addColumn('sdk', 'integer')
    .addColumn('model', 'text')
    .addColumn('abis', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('first_seen_at', 'text', (c) => c.notNull())
    .addColumn('last_seen_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('devices_host_serial', ['host_id', 'serial'])
    .execute();
  await db.schema.createIndex('devices_state').on('devices').columns(['state', 'id']).execute();

  await db.schema
    .createTable('leases')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status in ('queued', 'granted', 'released', 'expired', 'cancelled', 'timed_out')`),
    )
    .addColumn('selector', 'text', (c) => c.notNull())
    .addColumn('count', 'integer', (c) => c.notNull())
    .addColumn('ttl_seconds', 'integer', (c) => c.notNull())
    .addColumn('note', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('wait_until', 'text')
    .addColumn('granted_at', 'text')
    .addColumn('renewed_at', 'text')
    .addColumn('expires_at', 'text')
    .addColumn('ended_at', 'text')
    .addColumn('end_reason', 'text')
    .addColumn('ended_by', 'text')
    .execute();
  await db.schema.createIndex('leases_status').on('leases').columns(['status', 'id']).execute();
  await db.schema.createIndex('leases_user_id').on('leases').columns(['user_id', 'id']).execute();

  await db.schema
    .createTable('lease_devices')
    .addColumn('lease_id', 'text', (c) => c.notNull().references('leases.id').onDelete('cascade'))
    .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('granted_at', 'text', (c) => c.notNull())
    .addColumn('released_at', 'text')
    .addColumn('baseline_packages', 'text')
    .addColumn('reset', 'text')
    .addPrimaryKeyConstraint('lease_devices_pk', ['lease_id', 'device_id'])
    .execute();
  // The scheduler prefers the device leased least recently: max(granted_at) per device, by index.
  await db.schema
    .createIndex('lease_devices_device_granted')
    .on('lease_devices')
    .columns(['device_id', 'granted_at'])
    .execute();
  // The invariant the lease scheduler relies on, enforced by the database too: a device is in at most one
  // unreleased lease.
  await sql`create unique index lease_devices_active on lease_devices (device_id) where released_at is null`.execute(
    db,
  );
}
