import type { Adb } from '@yume-chan/adb';
import type { Kysely } from 'kysely';
import { afterEach } from 'vitest';
import type { DB } from '../../src/db/schema.js';
import { DeviceInventory } from '../../src/devices/inventory.js';
import type {
  DeviceInfo,
  DeviceKind,
  DeviceUpdate,
  HostLiveStatus,
  HostSpec,
  LiveDevices,
  LiveState,
} from '../../src/devices/types.js';
import type { Principal } from '../../src/http/handler.js';
import { ManualClock } from '../helpers/clock.js';
import { openTestDatabase } from '../helpers/database.js';
import { insertUser } from '../helpers/users.js';

/** A `LiveDevices` driven by the test: `emit` reports a device update as a host would. */
export class FakeLive implements LiveDevices {
  readonly added: HostSpec[] = [];
  readonly removed: string[] = [];
  readonly statuses = new Map<string, HostLiveStatus>();
  readonly #devices = new Map<string, { update: DeviceUpdate; adb: Adb | undefined }>();
  readonly #listeners = new Set<(update: DeviceUpdate) => void>();

  addHost(spec: HostSpec): void {
    this.added.push(spec);
  }

  async removeHost(hostId: string): Promise<void> {
    this.removed.push(hostId);
  }

  hostStatus(hostId: string): HostLiveStatus {
    return this.statuses.get(hostId) ?? { status: 'connecting', lastError: null, nextRetryAt: null };
  }

  snapshot(hostId?: string): DeviceUpdate[] {
    return [...this.#devices.values()].map((d) => d.update).filter((u) => hostId === undefined || u.hostId === hostId);
  }

  adb(hostId: string, serial: string): Adb | undefined {
    const device = this.#devices.get(`${hostId}/${serial}`);
    return device?.update.state === 'online' ? device.adb : undefined;
  }

  onUpdate(listener: (update: DeviceUpdate) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onHostStatus(): () => void {
    return () => undefined;
  }

  async close(): Promise<void> {}

  emit(update: DeviceUpdate, adb?: Adb): void {
    this.#devices.set(`${update.hostId}/${update.serial}`, {
      update,
      adb: update.state === 'online' ? (adb ?? ({ serial: update.serial } as unknown as Adb)) : undefined,
    });
    for (const listener of this.#listeners) listener(update);
  }
}

export function info(fields: { model?: string; sdk?: number; abis?: string[] } = {}): DeviceInfo {
  return {
    properties: {
      manufacturer: 'Google',
      model: fields.model ?? 'Pixel 7',
      brand: 'google',
      device: 'panther',
      androidVersion: '14',
      sdk: fields.sdk ?? 34,
      abis: fields.abis ?? ['arm64-v8a'],
      screen: { width: 1080, height: 2400, density: 420 },
    },
    battery: { level: 80, charging: true, temperatureC: 31.5 },
  };
}

export function update(
  hostId: string,
  serial: string,
  state: LiveState,
  extra: { kind?: DeviceKind; info?: DeviceInfo | null } = {},
): DeviceUpdate {
  return {
    hostId,
    serial,
    kind: extra.kind ?? 'physical',
    state,
    info: extra.info !== undefined ? extra.info : state === 'online' ? info() : null,
  };
}

export const silent = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  debug: () => undefined,
} as never;

export interface InventoryFixture {
  db: Kysely<DB>;
  clock: ManualClock;
  live: FakeLive;
  inventory: DeviceInventory;
  admin: Principal;
  /** Inserts a host row directly. */
  host(id: string, options?: { draining?: boolean; name?: string }): Promise<string>;
  /** Emits an update and waits until the inventory wrote it; returns the device's id. */
  report(u: DeviceUpdate, adb?: Adb): Promise<string>;
  events(type?: string): Promise<{ type: string; subjectId: string | null; actorType: string; data: any }[]>;
  /** Inserts a granted lease holding the device. */
  lease(deviceId: string, options?: { released?: boolean }): Promise<string>;
}

const open: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((close) => close()));
});

export async function inventoryFixture(options: { start?: boolean } = {}): Promise<InventoryFixture> {
  const database = await openTestDatabase();
  const { db } = database;
  const clock = new ManualClock();
  const live = new FakeLive();
  const inventory = new DeviceInventory({ db, clock: clock.now, live, log: silent });
  open.push(async () => {
    await inventory.close();
    await database.close();
  });
  const at = clock.now().toISOString();
  const admin = await insertUser(db, 'admin', 'admin', at);
  let leases = 0;
  const fixture: InventoryFixture = {
    db,
    clock,
    live,
    inventory,
    admin,
    async host(id, o = {}) {
      await db
        .insertInto('hosts')
        .values({
          id,
          type: 'adb_server',
          address: `${id}:5037`,
          name: o.name ?? id,
          origin: 'api',
          draining: o.draining ? 1 : 0,
          created_at: at,
          updated_at: at,
        })
        .execute();
      return id;
    },
    async report(u, adb) {
      live.emit(u, adb);
      await inventory.idle();
      const row = await db
        .selectFrom('devices')
        .select('id')
        .where('host_id', '=', u.hostId)
        .where('serial', '=', u.serial)
        .executeTakeFirst();
      return row?.id ?? '';
    },
    async events(type) {
      let select = db.selectFrom('events').selectAll().orderBy('seq');
      if (type !== undefined) select = select.where('type', '=', type);
      const rows = await select.execute();
      return rows.map((row) => ({
        type: row.type,
        subjectId: row.subject_id,
        actorType: row.actor_type,
        data: JSON.parse(row.data),
      }));
    },
    async lease(deviceId, o = {}) {
      leases += 1;
      const id = `lse_${String(leases).padStart(26, '0')}`;
      const now = clock.now().toISOString();
      const expires = new Date(clock.now().getTime() + 900_000).toISOString();
      await db
        .insertInto('leases')
        .values({
          id,
          user_id: 'usr_admin',
          status: o.released ? 'released' : 'granted',
          selector: '{}',
          count: 1,
          ttl_seconds: 900,
          note: null,
          created_at: now,
          wait_until: null,
          granted_at: now,
          renewed_at: null,
          expires_at: expires,
          ended_at: o.released ? now : null,
          end_reason: o.released ? 'released' : null,
          ended_by: null,
        })
        .execute();
      await db
        .insertInto('lease_devices')
        .values({
          lease_id: id,
          device_id: deviceId,
          granted_at: now,
          released_at: o.released ? now : null,
          baseline_packages: null,
          reset: null,
        })
        .execute();
      return id;
    },
  };
  if (options.start !== false) await inventory.start();
  return fixture;
}
