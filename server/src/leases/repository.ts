import { sql, type Kysely, type Selectable } from 'kysely';
import type { DB, LeaseDevicesTable, LeasesTable } from '../db/schema.js';
import type { DeviceBaseline } from '../devices/types.js';
import type { SchedulableDevice } from './scheduler.js';

export type LeaseRow = Selectable<LeasesTable>;
export type LeaseStatus = LeaseRow['status'];
export type LeaseDeviceRow = Selectable<LeaseDevicesTable>;

/** A lease with its holder's username, as views need it. */
export type LeaseWithUser = LeaseRow & { username: string };

/** A device of a lease with the device's own fields the view shows. */
export interface LeaseDeviceDetail {
  leaseId: string;
  deviceId: string;
  serial: string;
  model: string | null;
  sdk: number | null;
  kind: 'physical' | 'emulator' | 'network' | 'virtual';
  releasedAt: string | null;
  reset: string | null;
}

export const ACTIVE_STATUSES: readonly LeaseStatus[] = ['queued', 'granted'];

export async function insertLease(db: Kysely<DB>, row: LeaseRow): Promise<void> {
  await db.insertInto('leases').values(row).execute();
}

function leasesWithUser(db: Kysely<DB>) {
  return db.selectFrom('leases').innerJoin('users', 'users.id', 'leases.user_id').selectAll('leases').select('users.username');
}

export async function findLease(db: Kysely<DB>, id: string): Promise<LeaseWithUser | undefined> {
  return leasesWithUser(db).where('leases.id', '=', id).executeTakeFirst();
}

export interface LeaseQuery {
  /** Only this user's leases; `undefined` for everyone's. */
  userId: string | undefined;
  statuses: readonly LeaseStatus[];
  afterId: string | undefined;
  limit: number;
}

/** Leases in id order, which is creation order. */
export async function queryLeases(db: Kysely<DB>, query: LeaseQuery): Promise<LeaseWithUser[]> {
  let select = leasesWithUser(db);
  if (query.userId !== undefined) select = select.where('leases.user_id', '=', query.userId);
  if (query.statuses.length > 0) select = select.where('leases.status', 'in', [...query.statuses]);
  if (query.afterId !== undefined) select = select.where('leases.id', '>', query.afterId);
  return select.orderBy('leases.id', 'asc').limit(query.limit).execute();
}

/** The devices of the given leases (released ones included), by lease then device id. */
export async function findLeaseDevices(db: Kysely<DB>, leaseIds: readonly string[]): Promise<LeaseDeviceDetail[]> {
  if (leaseIds.length === 0) return [];
  return db
    .selectFrom('lease_devices')
    .innerJoin('devices', 'devices.id', 'lease_devices.device_id')
    .select([
      'lease_devices.lease_id as leaseId',
      'lease_devices.device_id as deviceId',
      'devices.serial as serial',
      'devices.model as model',
      'devices.sdk as sdk',
      'devices.kind as kind',
      'lease_devices.released_at as releasedAt',
      'lease_devices.reset as reset',
    ])
    .where('lease_devices.lease_id', 'in', [...leaseIds])
    .orderBy('lease_devices.lease_id')
    .orderBy('lease_devices.device_id')
    .execute();
}

/** Queued leases in creation order. */
export async function queuedLeases(db: Kysely<DB>): Promise<LeaseRow[]> {
  return db.selectFrom('leases').selectAll().where('status', '=', 'queued').orderBy('id').execute();
}

/** The ids of queued leases in creation order: a lease's queue position is its index + 1. */
export async function queuedLeaseIds(db: Kysely<DB>): Promise<string[]> {
  const rows = await db.selectFrom('leases').select('id').where('status', '=', 'queued').orderBy('id').execute();
  return rows.map((row) => row.id);
}

/** 1-based position of a queued lease among the queued ones. */
export async function queuePositionOf(db: Kysely<DB>, id: string): Promise<number> {
  const row = await db
    .selectFrom('leases')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('status', '=', 'queued')
    .where('id', '<=', id)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Every known device with what the scheduler needs, availability included. */
export async function schedulableDevices(db: Kysely<DB>): Promise<(SchedulableDevice & { state: string })[]> {
  const rows = await db
    .selectFrom('devices')
    .innerJoin('hosts', 'hosts.id', 'devices.host_id')
    .select((eb) => [
      'devices.id as id',
      'devices.host_id as hostId',
      'devices.kind as kind',
      'devices.model as model',
      'devices.sdk as sdk',
      'devices.abis as abis',
      'devices.labels as labels',
      'devices.state as state',
      'devices.maintenance as maintenance',
      'devices.resetting as resetting',
      'hosts.draining as draining',
      eb
        .exists(
          eb
            .selectFrom('lease_devices')
            .select('lease_devices.device_id')
            .whereRef('lease_devices.device_id', '=', 'devices.id')
            .where('lease_devices.released_at', 'is', null),
        )
        .as('leased'),
      eb
        .selectFrom('lease_devices')
        .select((inner) => inner.fn.max('lease_devices.granted_at').as('at'))
        .whereRef('lease_devices.device_id', '=', 'devices.id')
        .as('lastLeasedAt'),
    ])
    .orderBy('devices.id')
    .execute();
  return rows.map((row) => ({
    id: row.id,
    hostId: row.hostId,
    kind: row.kind,
    model: row.model,
    sdk: row.sdk,
    abis: parseJson<string[]>(row.abis, []),
    labels: parseJson<Record<string, string>>(row.labels, {}),
    state: row.state,
    available:
      row.state === 'online' &&
      row.maintenance === 0 &&
      row.resetting === 0 &&
      row.draining === 0 &&
      !(row.leased as unknown as number),
    lastLeasedAt: (row.lastLeasedAt as string | null | undefined) ?? null,
  }));
}

function parseJson<T>(text: string, fallback: T): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

/** Records the grant of the devices, each with its billing class; their metering starts at the grant. */
export async function insertLeaseDevices(
  db: Kysely<DB>,
  leaseId: string,
  devices: readonly { id: string; billingClass: string | null }[],
  at: string,
): Promise<void> {
  if (devices.length === 0) return;
  await db
    .insertInto('lease_devices')
    .values(
      devices.map((device) => ({
        lease_id: leaseId,
        device_id: device.id,
        granted_at: at,
        released_at: null,
        baseline_packages: null,
        reset: null,
        billing_class: device.billingClass,
        metered_from: at,
      })),
    )
    .execute();
}

export async function markGranted(db: Kysely<DB>, id: string, grantedAt: string, expiresAt: string): Promise<void> {
  await db
    .updateTable('leases')
    .set({ status: 'granted', granted_at: grantedAt, expires_at: expiresAt })
    .where('id', '=', id)
    .where('status', '=', 'queued')
    .execute();
}

export async function renewLeaseRow(db: Kysely<DB>, id: string, at: string, expiresAt: string): Promise<boolean> {
  const result = await db
    .updateTable('leases')
    .set({ renewed_at: at, expires_at: expiresAt })
    .where('id', '=', id)
    .where('status', '=', 'granted')
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Ends an active lease; false when it was not active any more. */
export async function endLeaseRow(
  db: Kysely<DB>,
  id: string,
  end: { status: LeaseStatus; endReason: string; endedAt: string; endedBy: string | null },
): Promise<boolean> {
  const result = await db
    .updateTable('leases')
    .set({ status: end.status, end_reason: end.endReason, ended_at: end.endedAt, ended_by: end.endedBy })
    .where('id', '=', id)
    .where('status', 'in', [...ACTIVE_STATUSES])
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** A device a lease released, with its state and stored baseline (`parseBaseline`) as they were at release. */
export interface ReleasedDevice {
  deviceId: string;
  state: string;
  baseline: string | null;
}

/** A released device with what metering its time needs. */
export interface ReleasedLeaseDevice extends ReleasedDevice {
  /** Its billing class at the grant (null on leases from before billing). */
  billingClass: string | null;
  kind: string;
  labels: string;
  /** Where its unmetered time starts. */
  meteredFrom: string;
}

/** Releases a lease's devices and returns them, with each one's state and baseline as they were at release. */
export async function releaseLeaseDevices(
  db: Kysely<DB>,
  leaseId: string,
  at: string,
): Promise<ReleasedLeaseDevice[]> {
  const rows = await db
    .selectFrom('lease_devices')
    .innerJoin('devices', 'devices.id', 'lease_devices.device_id')
    .select([
      'lease_devices.device_id as deviceId',
      'devices.state as state',
      'lease_devices.baseline_packages as baseline',
      'lease_devices.billing_class as billingClass',
      'devices.kind as kind',
      'devices.labels as labels',
      sql<string>`coalesce(lease_devices.metered_from, lease_devices.granted_at)`.as('meteredFrom'),
    ])
    .where('lease_devices.lease_id', '=', leaseId)
    .where('lease_devices.released_at', 'is', null)
    .orderBy('lease_devices.device_id')
    .execute();
  if (rows.length > 0) {
    await db
      .updateTable('lease_devices')
      .set({ released_at: at })
      .where('lease_id', '=', leaseId)
      .where('released_at', 'is', null)
      .execute();
  }
  return rows;
}

/** Marks the devices as resetting, by `node` (null when alone on the database). */
export async function setDevicesResetting(
  db: Kysely<DB>,
  deviceIds: readonly string[],
  at: string,
  node: string | null,
): Promise<void> {
  if (deviceIds.length === 0) return;
  await db
    .updateTable('devices')
    .set({ resetting: 1, resetting_node: node, updated_at: at })
    .where('id', 'in', [...deviceIds])
    .execute();
}

/**
 * The devices whose reset was left by a node not in `live` (or by none recorded), each with the lease it follows
 * and its state and baseline as at that lease's release.
 */
export async function orphanedResets(
  db: Kysely<DB>,
  live: ReadonlySet<string>,
): Promise<(ReleasedDevice & { leaseId: string; node: string | null })[]> {
  const devices = await db
    .selectFrom('devices')
    .select(['id', 'state', 'resetting_node'])
    .where('resetting', '=', 1)
    .execute();
  const orphaned = devices.filter((device) => device.resetting_node === null || !live.has(device.resetting_node));
  const found = [];
  for (const device of orphaned) {
    const last = await db
      .selectFrom('lease_devices')
      .select(['lease_id', 'baseline_packages'])
      .where('device_id', '=', device.id)
      .where('released_at', 'is not', null)
      .where('reset', 'is', null)
      .orderBy('released_at', 'desc')
      .executeTakeFirst();
    if (last === undefined) continue;
    found.push({
      deviceId: device.id,
      state: device.state,
      baseline: last.baseline_packages,
      leaseId: last.lease_id,
      node: device.resetting_node,
    });
  }
  return found;
}

/** Takes over a device's reset from `from` (the node that left it); false if another node took it first. */
export async function claimReset(db: Kysely<DB>, deviceId: string, from: string | null, node: string): Promise<boolean> {
  let update = db
    .updateTable('devices')
    .set({ resetting_node: node })
    .where('id', '=', deviceId)
    .where('resetting', '=', 1);
  update = from === null ? update.where('resetting_node', 'is', null) : update.where('resetting_node', '=', from);
  const result = await update.executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/**
 * The baseline is one JSON document in `baseline_packages`: a `DeviceBaseline`, or, as leases granted before files
 * were part of it recorded, an array of packages.
 */
export function parseBaseline(stored: string): DeviceBaseline {
  const parsed = JSON.parse(stored) as DeviceBaseline | string[];
  return Array.isArray(parsed) ? { packages: parsed, storage: null } : parsed;
}

export async function setBaseline(db: Kysely<DB>, leaseId: string, deviceId: string, baseline: DeviceBaseline): Promise<void> {
  await db
    .updateTable('lease_devices')
    .set({ baseline_packages: JSON.stringify(baseline) })
    .where('lease_id', '=', leaseId)
    .where('device_id', '=', deviceId)
    .execute();
}

/**
 * The granted lease holding the device whose baseline is not recorded yet, if it was granted after `since` (ISO):
 * the node that granted it may still be reading it.
 */
export async function leaseAwaitingBaseline(db: Kysely<DB>, deviceId: string, since: string): Promise<string | undefined> {
  const row = await db
    .selectFrom('lease_devices')
    .innerJoin('leases', 'leases.id', 'lease_devices.lease_id')
    .select('leases.id as leaseId')
    .where('lease_devices.device_id', '=', deviceId)
    .where('lease_devices.released_at', 'is', null)
    .where('lease_devices.baseline_packages', 'is', null)
    .where('leases.status', '=', 'granted')
    .where('leases.granted_at', '>', since)
    .executeTakeFirst();
  return row?.leaseId;
}

export async function findBaseline(db: Kysely<DB>, leaseId: string, deviceId: string): Promise<string | null> {
  const row = await db
    .selectFrom('lease_devices')
    .select('baseline_packages')
    .where('lease_id', '=', leaseId)
    .where('device_id', '=', deviceId)
    .executeTakeFirst();
  return row?.baseline_packages ?? null;
}

export async function setReset(db: Kysely<DB>, leaseId: string, deviceId: string, reset: object): Promise<void> {
  await db
    .updateTable('lease_devices')
    .set({ reset: JSON.stringify(reset) })
    .where('lease_id', '=', leaseId)
    .where('device_id', '=', deviceId)
    .execute();
}

/** Granted leases whose time is up, and queued leases whose wait is over, at `now` (ISO). */
export async function overdueLeases(db: Kysely<DB>, now: string): Promise<LeaseRow[]> {
  return db
    .selectFrom('leases')
    .selectAll()
    .where((eb) =>
      eb.or([
        eb.and([eb('status', '=', 'granted'), eb('expires_at', '<=', now)]),
        eb.and([eb('status', '=', 'queued'), eb('wait_until', 'is not', null), eb('wait_until', '<=', now)]),
      ]),
    )
    .orderBy('id')
    .execute();
}

/** Granted leases expiring after `now` and by `until` whose warning was not given for their current expiry. */
export async function leasesToWarn(db: Kysely<DB>, now: string, until: string): Promise<LeaseRow[]> {
  return db
    .selectFrom('leases')
    .selectAll()
    .where('status', '=', 'granted')
    .where('expires_at', '>', now)
    .where('expires_at', '<=', until)
    .where((eb) => eb.or([eb('expiry_warned_for', 'is', null), eb('expiry_warned_for', '!=', eb.ref('expires_at'))]))
    .orderBy('expires_at')
    .execute();
}

/** Records the warning for the lease's expiry `expiresAt`; false when it was renewed, ended or warned meanwhile. */
export async function markExpiryWarned(db: Kysely<DB>, id: string, expiresAt: string): Promise<boolean> {
  const result = await db
    .updateTable('leases')
    .set({ expiry_warned_for: expiresAt })
    .where('id', '=', id)
    .where('status', '=', 'granted')
    .where('expires_at', '=', expiresAt)
    .where((eb) => eb.or([eb('expiry_warned_for', 'is', null), eb('expiry_warned_for', '!=', expiresAt)]))
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Every device held by a granted lease: the rows the authorisation index is built from. */
export async function heldDevices(
  db: Kysely<DB>,
): Promise<{ deviceId: string; leaseId: string; userId: string; expiresAt: string | null }[]> {
  return db
    .selectFrom('lease_devices')
    .innerJoin('leases', 'leases.id', 'lease_devices.lease_id')
    .select([
      'lease_devices.device_id as deviceId',
      'leases.id as leaseId',
      'leases.user_id as userId',
      'leases.expires_at as expiresAt',
    ])
    .where('lease_devices.released_at', 'is', null)
    .where('leases.status', '=', 'granted')
    .execute();
}

/** The user holding the device through a granted lease, with the lease's expiry; undefined when nobody does. */
export async function holderOf(
  db: Kysely<DB>,
  deviceId: string,
): Promise<{ userId: string; expiresAt: string | null } | undefined> {
  return db
    .selectFrom('lease_devices')
    .innerJoin('leases', 'leases.id', 'lease_devices.lease_id')
    .select(['leases.user_id as userId', 'leases.expires_at as expiresAt'])
    .where('lease_devices.device_id', '=', deviceId)
    .where('lease_devices.released_at', 'is', null)
    .where('leases.status', '=', 'granted')
    .executeTakeFirst();
}

/** Active leases holding a device of the host. */
export async function leasesOnHost(db: Kysely<DB>, hostId: string): Promise<LeaseRow[]> {
  return db
    .selectFrom('leases')
    .selectAll()
    .where('status', 'in', [...ACTIVE_STATUSES])
    .where((eb) =>
      eb.exists(
        eb
          .selectFrom('lease_devices')
          .innerJoin('devices', 'devices.id', 'lease_devices.device_id')
          .select('lease_devices.device_id')
          .whereRef('lease_devices.lease_id', '=', 'leases.id')
          .where('lease_devices.released_at', 'is', null)
          .where('devices.host_id', '=', hostId),
      ),
    )
    .orderBy('id')
    .execute();
}

/** A user's queued and granted leases. */
export async function activeLeasesOfUser(db: Kysely<DB>, userId: string): Promise<LeaseRow[]> {
  return db
    .selectFrom('leases')
    .selectAll()
    .where('user_id', '=', userId)
    .where('status', 'in', [...ACTIVE_STATUSES])
    .orderBy('id')
    .execute();
}

export async function usernameOf(db: Kysely<DB>, userId: string): Promise<string> {
  const row = await db.selectFrom('users').select('username').where('id', '=', userId).executeTakeFirst();
  return row?.username ?? '';
}

/** The given leases that are still active, in id order. */
export async function activeLeases(db: Kysely<DB>, ids: readonly string[]): Promise<LeaseRow[]> {
  if (ids.length === 0) return [];
  return db
    .selectFrom('leases')
    .selectAll()
    .where('id', 'in', [...ids])
    .where('status', 'in', [...ACTIVE_STATUSES])
    .orderBy('id')
    .execute();
}
