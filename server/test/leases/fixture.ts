import type { Kysely } from 'kysely';
import { afterEach } from 'vitest';
import type { DB, DevicesTable } from '../../src/db/schema.js';
import type { DeviceBaseline } from '../../src/devices/types.js';
import type { Role } from '../../src/http/access.js';
import type { Principal } from '../../src/http/handler.js';
import { LeaseService, type LeaseBilling, type LeaseDeviceOps } from '../../src/leases/service.js';
import { ManualClock } from '../helpers/clock.js';
import { openTestDatabase } from '../helpers/database.js';
import { insertUser } from '../helpers/users.js';

/** Records what the lease service asked of the device layer; `setResetting` writes the flag like the inventory. */
export class FakeDeviceOps implements LeaseDeviceOps {
  readonly calls: string[] = [];
  /** Third-party packages on each device now. */
  readonly packages = new Map<string, string[]>();
  readonly #listeners = new Set<() => void>();
  /** Each device's current connection; none by default (a device never counts as known-clean). */
  readonly connections = new Map<string, object>();
  failSnapshot = false;
  resetError: Error | null = null;
  /** What the next resets report they could not undo. */
  differences: string[] = [];

  constructor(readonly db: Kysely<DB>) {}

  async snapshot(deviceId: string): Promise<DeviceBaseline> {
    this.calls.push(`snapshot ${deviceId}`);
    if (this.failSnapshot) throw new Error('adb went away');
    return { packages: [...(this.packages.get(deviceId) ?? ['com.example.base'])], storage: null };
  }

  async reset(deviceId: string, baseline: DeviceBaseline) {
    const packages = baseline.packages;
    this.calls.push(`reset ${deviceId} [${packages.join(',')}]`);
    if (this.resetError !== null) throw this.resetError;
    const now = this.packages.get(deviceId) ?? ['com.example.base'];
    const uninstalled = now.filter((name) => !packages.includes(name));
    this.packages.set(
      deviceId,
      now.filter((name) => packages.includes(name)),
    );
    return { uninstalled, clearedTmp: true, removed: [], differences: [...this.differences], error: null };
  }

  async setResetting(deviceId: string, on: boolean): Promise<void> {
    this.calls.push(`resetting ${deviceId} ${on}`);
    await this.db
      .updateTable('devices')
      .set({ resetting: on ? 1 : 0 })
      .where('id', '=', deviceId)
      .execute();
    if (!on) this.changed();
  }

  connectionOf(deviceId: string): object | undefined {
    return this.connections.get(deviceId);
  }

  onAvailabilityChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Tells listeners that availability may have changed. */
  changed(): void {
    for (const listener of this.#listeners) listener();
  }
}

export interface LeaseFixture {
  db: Kysely<DB>;
  clock: ManualClock;
  ops: FakeDeviceOps;
  leases: LeaseService;
  user(username: string, role?: Role): Promise<Principal>;
  host(id: string, options?: { draining?: boolean }): Promise<string>;
  device(id: string, fields?: Partial<DevicesTable> & { hostId?: string }): Promise<string>;
  events(type?: string): Promise<{ type: string; subjectId: string | null; actorType: string; data: any }[]>;
  /** Devices in more than one unreleased lease: must always be empty. */
  doubleBooked(): Promise<string[]>;
  /** Closes the service and the database before the test ends (they are closed after it anyway). */
  close(): Promise<void>;
}

const open: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((close) => close()));
});

const silent = { warn: () => undefined, error: () => undefined } as never;

export interface LeaseFixtureOptions {
  clock?: ManualClock;
  /** Billing for the lease service, built on the fixture's database. */
  billing?: (db: Kysely<DB>) => LeaseBilling;
}

export async function leaseFixture(options: LeaseFixtureOptions = {}): Promise<LeaseFixture> {
  const database = await openTestDatabase();
  const { db } = database;
  const clock = options.clock ?? new ManualClock();
  const ops = new FakeDeviceOps(db);
  const billing = options.billing?.(db);
  const leases = new LeaseService({ db, clock: clock.now, log: silent, devices: ops, sweepIntervalMs: 3_600_000, billing });
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await leases.close();
      await database.close();
    })());
  open.push(close);
  const at = clock.now().toISOString();
  let defaultHost: string | undefined;
  const fixture: LeaseFixture = {
    db,
    clock,
    ops,
    leases,
    close,
    user: (username, role = 'member') => insertUser(db, username, role, at),
    async host(id, options = {}) {
      await db
        .insertInto('hosts')
        .values({
          id,
          type: 'adb_server',
          address: `${id}:5037`,
          name: id,
          origin: 'config',
          draining: options.draining ? 1 : 0,
          created_at: at,
          updated_at: at,
        })
        .execute();
      return id;
    },
    async device(id, fields = {}) {
      const { hostId, ...rest } = fields;
      defaultHost ??= await fixture.host('hst_default');
      await db
        .insertInto('devices')
        .values({
          id,
          host_id: hostId ?? defaultHost,
          serial: `serial-${id}`,
          kind: 'physical',
          state: 'online',
          maintenance: 0,
          resetting: 0,
          labels: '{}',
          properties: null,
          battery: null,
          sdk: 34,
          model: 'Pixel 8',
          abis: '["arm64-v8a"]',
          first_seen_at: at,
          last_seen_at: at,
          updated_at: at,
          ...rest,
        })
        .execute();
      return id;
    },
    async events(type) {
      let select = db.selectFrom('events').selectAll().orderBy('seq');
      if (type !== undefined) select = select.where('type', '=', type);
      return (await select.execute()).map((row) => ({
        type: row.type,
        subjectId: row.subject_id,
        actorType: row.actor_type,
        data: JSON.parse(row.data),
      }));
    },
    async doubleBooked() {
      const rows = await db
        .selectFrom('lease_devices')
        .select(['device_id', (eb) => eb.fn.countAll<number>().as('n')])
        .where('released_at', 'is', null)
        .groupBy('device_id')
        .having((eb) => eb.fn.countAll(), '>', 1)
        .execute();
      return rows.map((row) => row.device_id);
    },
  };
  return fixture;
}
