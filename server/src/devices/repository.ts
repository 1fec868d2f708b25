import { sql, type Insertable, type Kysely, type Selectable, type SqlBool, type Updateable } from 'kysely';
import { isUniqueViolation, jsonArrayHas, jsonText } from '../db/dialect.js';
import type { DB, DevicesTable, HostsTable } from '../db/schema.js';
import type { DeviceKind } from './types.js';

export type DeviceRow = Selectable<DevicesTable>;
export type HostRow = Selectable<HostsTable>;

/** A device row with what its view adds: its host's name and draining flag, and the lease holding it (if any). */
export interface DeviceViewRow extends DeviceRow {
  host_name: string;
  host_draining: number;
  lease_id: string | null;
  lease_user_id: string | null;
  lease_username: string | null;
  lease_expires_at: string | null;
}

/** A device state as the API shows it: `maintenance` overrides the live state. */
export type DeviceStateFilter = 'online' | 'offline' | 'unauthorized' | 'maintenance';

export interface DeviceQuery {
  state: DeviceStateFilter | undefined;
  kind: DeviceKind | undefined;
  sdkMin: number | undefined;
  sdkMax: number | undefined;
  abi: string | undefined;
  /** Exact, case-insensitive. */
  model: string | undefined;
  /** Every label must be set to its value. Keys must be valid label keys (they are put into a JSON path). */
  labels: readonly { key: string; value: string }[];
  hostId: string | undefined;
  available: boolean | undefined;
  afterId: string | undefined;
  limit: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Devices

export async function findDeviceRow(db: Kysely<DB>, id: string): Promise<DeviceRow | undefined> {
  return db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findDeviceBySerial(
  db: Kysely<DB>,
  hostId: string,
  serial: string,
): Promise<DeviceRow | undefined> {
  return db
    .selectFrom('devices')
    .selectAll()
    .where('host_id', '=', hostId)
    .where('serial', '=', serial)
    .executeTakeFirst();
}

export async function insertDeviceRow(db: Kysely<DB>, row: Insertable<DevicesTable>): Promise<void> {
  await db.insertInto('devices').values(row).execute();
}

export async function updateDeviceRow(db: Kysely<DB>, id: string, changes: Updateable<DevicesTable>): Promise<void> {
  await db.updateTable('devices').set(changes).where('id', '=', id).execute();
}

/** Marks every device offline (at boot: nothing is connected yet), without touching `last_seen_at`. */
export async function markAllDevicesOffline(db: Kysely<DB>, at: string): Promise<void> {
  await db.updateTable('devices').set({ state: 'offline', updated_at: at }).where('state', '!=', 'offline').execute();
}

/** The devices not recorded as offline. */
export async function connectedDevices(db: Kysely<DB>): Promise<DeviceRow[]> {
  return db.selectFrom('devices').selectAll().where('state', '!=', 'offline').orderBy('id').execute();
}

/** id, host and serial of every device: the inventory keeps these in memory for synchronous lookups. */
export async function deviceKeys(db: Kysely<DB>): Promise<Pick<DeviceRow, 'id' | 'host_id' | 'serial'>[]> {
  return db.selectFrom('devices').select(['id', 'host_id', 'serial']).execute();
}

export async function devicesOfHost(db: Kysely<DB>, hostId: string): Promise<DeviceRow[]> {
  return db.selectFrom('devices').selectAll().where('host_id', '=', hostId).orderBy('id').execute();
}

export async function deleteDevicesOfHost(db: Kysely<DB>, hostId: string): Promise<void> {
  await db.deleteFrom('devices').where('host_id', '=', hostId).execute();
}

/**
 * Devices with their host and current lease. The lease columns are the one place the devices domain reads the
 * lease tables: an unreleased `lease_devices` row (at most one per device, a unique index makes sure) joined to its
 * lease and the lease's user.
 */
function deviceViews(db: Kysely<DB>) {
  return db
    .selectFrom('devices')
    .innerJoin('hosts', 'hosts.id', 'devices.host_id')
    .leftJoin('lease_devices', (join) =>
      join.onRef('lease_devices.device_id', '=', 'devices.id').on('lease_devices.released_at', 'is', null),
    )
    .leftJoin('leases', 'leases.id', 'lease_devices.lease_id')
    .leftJoin('users', 'users.id', 'leases.user_id')
    .selectAll('devices')
    .select([
      'hosts.name as host_name',
      'hosts.draining as host_draining',
      'leases.id as lease_id',
      'leases.user_id as lease_user_id',
      'users.username as lease_username',
      'leases.expires_at as lease_expires_at',
    ]);
}

export async function findDeviceView(db: Kysely<DB>, id: string): Promise<DeviceViewRow | undefined> {
  return deviceViews(db).where('devices.id', '=', id).executeTakeFirst();
}

/** Devices matching every filter of `query`, in id order. */
export async function queryDeviceViews(db: Kysely<DB>, query: DeviceQuery): Promise<DeviceViewRow[]> {
  let select = deviceViews(db);
  switch (query.state) {
    case undefined:
      break;
    case 'maintenance':
      select = select.where('devices.maintenance', '=', 1);
      break;
    default:
      select = select.where('devices.state', '=', query.state).where('devices.maintenance', '=', 0);
  }
  if (query.kind !== undefined) select = select.where('devices.kind', '=', query.kind);
  if (query.sdkMin !== undefined) select = select.where('devices.sdk', '>=', query.sdkMin);
  if (query.sdkMax !== undefined) select = select.where('devices.sdk', '<=', query.sdkMax);
  if (query.abi !== undefined) select = select.where(jsonArrayHas(db, 'devices.abis', query.abi));
  if (query.model !== undefined) {
    select = select.where(sql<SqlBool>`lower(${sql.ref('devices.model')}) = ${query.model.toLowerCase()}`);
  }
  for (const { key, value } of query.labels) {
    // Label keys are restricted to [a-z0-9._/-]: none holds a double quote, which SQLite's JSON path cannot take.
    select = select.where(sql<SqlBool>`${jsonText(db, 'devices.labels', key)} = ${value}`);
  }
  if (query.hostId !== undefined) select = select.where('devices.host_id', '=', query.hostId);
  if (query.available !== undefined) {
    const available = sql<SqlBool>`(${sql.ref('devices.state')} = 'online'
      and ${sql.ref('devices.maintenance')} = 0
      and ${sql.ref('devices.resetting')} = 0
      and ${sql.ref('hosts.draining')} = 0
      and ${sql.ref('lease_devices.lease_id')} is null)`;
    select = select.where(query.available ? available : sql<SqlBool>`not ${available}`);
  }
  if (query.afterId !== undefined) select = select.where('devices.id', '>', query.afterId);
  return select.orderBy('devices.id', 'asc').limit(query.limit).execute();
}

// ---------------------------------------------------------------------------------------------------------------
// Hosts

export async function findHostRow(db: Kysely<DB>, id: string): Promise<HostRow | undefined> {
  return db.selectFrom('hosts').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findHostByAddress(
  db: Kysely<DB>,
  type: HostRow['type'],
  address: string,
): Promise<HostRow | undefined> {
  return db.selectFrom('hosts').selectAll().where('type', '=', type).where('address', '=', address).executeTakeFirst();
}

export async function listHostRows(db: Kysely<DB>): Promise<HostRow[]> {
  return db.selectFrom('hosts').selectAll().orderBy('id').execute();
}

/** Inserts a host; resolves `false` when one of the same type and address exists. */
export async function insertHostRow(db: Kysely<DB>, row: Insertable<HostsTable>): Promise<boolean> {
  try {
    await db.insertInto('hosts').values(row).execute();
    return true;
  } catch (error) {
    if (isUniqueViolation(error)) return false;
    throw error;
  }
}

export async function updateHostRow(db: Kysely<DB>, id: string, changes: Updateable<HostsTable>): Promise<void> {
  await db.updateTable('hosts').set(changes).where('id', '=', id).execute();
}

export async function deleteHostRow(db: Kysely<DB>, id: string): Promise<void> {
  await db.deleteFrom('hosts').where('id', '=', id).execute();
}

export interface HostCounts {
  deviceCount: number;
  onlineCount: number;
}

/** Devices per host, and how many of them are online (maintenance or not), for the hosts given or every host. */
export async function hostDeviceCounts(db: Kysely<DB>, hostId?: string): Promise<Map<string, HostCounts>> {
  let select = db
    .selectFrom('devices')
    .select((eb) => [
      'host_id',
      eb.fn.countAll<number>().as('total'),
      eb.fn.sum<number>(sql<number>`case when ${sql.ref('state')} = 'online' then 1 else 0 end`).as('online'),
    ])
    .groupBy('host_id');
  if (hostId !== undefined) select = select.where('host_id', '=', hostId);
  const rows = await select.execute();
  return new Map(rows.map((row) => [row.host_id, { deviceCount: Number(row.total), onlineCount: Number(row.online) }]));
}
