import type { Adb } from '@yume-chan/adb';
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import { newId } from '../db/ids.js';
import type { DB } from '../db/schema.js';
import { appendEvent } from '../events/log.js';
import { principalActor, systemCause, type Cause } from '../events/types.js';
import { ApiError } from '../http/errors.js';
import type { Principal } from '../http/handler.js';
import { decodeCursor, idPosition, toPage, type Page } from '../pagination.js';
import { DeviceOfflineError, DeviceTimeoutError } from './adb/errors.js';
import {
  deviceKeys,
  findDeviceBySerial,
  findDeviceRow,
  findDeviceView,
  findHostRow,
  insertDeviceRow,
  markAllDevicesOffline,
  connectedDevices,
  queryDeviceViews,
  updateDeviceRow,
  type DeviceRow,
  type DeviceStateFilter,
} from './repository.js';
import type { DeviceKind, DeviceUpdate, LiveDevices, LiveState } from './types.js';
import { toDevice, toDeviceSummary, viewState, type Device } from './view.js';

export type InventoryLog = Pick<FastifyBaseLogger, 'error' | 'warn' | 'debug'>;

export interface DeviceListQuery {
  state?: DeviceStateFilter | undefined;
  kind?: DeviceKind | undefined;
  sdkMin?: number | undefined;
  sdkMax?: number | undefined;
  abi?: string | undefined;
  model?: string | undefined;
  /** `key=value` each; all must match. */
  label?: string[] | undefined;
  hostId?: string | undefined;
  available?: boolean | undefined;
  cursor?: string | undefined;
  limit: number;
}

export interface DevicePatch {
  /** Labels to set; `null` removes one. */
  labels?: { [key: string]: string | null } | undefined;
  maintenance?: boolean | undefined;
}

const devicePosition = idPosition(/^dev_[0-9A-Z]{26}$/);

function noSuchDevice(id: string): ApiError {
  return new ApiError('device_not_found', `No device ${id}.`);
}

/** `key=value` label filters as pairs; their form is the contract's (checked before the handler runs). */
export function parseLabelFilters(filters: readonly string[]): { key: string; value: string }[] {
  return filters.map((filter) => {
    const at = filter.indexOf('=');
    return { key: filter.slice(0, at), value: filter.slice(at + 1) };
  });
}

/**
 * Records, in `trx`, the event of a device's live state going from `row.state` to `to`: `device.connected` when it
 * comes online, `device.disconnected` when an online device goes offline, else `device.state_changed` (skipped when
 * the state the API shows does not change, e.g. while in maintenance). Nothing when the live state is the same.
 */
export async function recordLiveTransition(
  trx: Kysely<DB>,
  row: DeviceRow,
  to: LiveState,
  cause: Cause,
  at: Date,
): Promise<void> {
  if (row.state === to) return;
  const after = { ...row, state: to };
  const device = toDeviceSummary(after);
  const base = {
    actor: cause.actor,
    requestId: cause.requestId,
    subject: { type: 'device', id: row.id },
    occurredAt: at,
  } as const;
  if (to === 'online') {
    await appendEvent(trx, { ...base, type: 'device.connected', data: { device } });
  } else if (to === 'offline' && row.state === 'online') {
    await appendEvent(trx, { ...base, type: 'device.disconnected', data: { device } });
  } else if (viewState(row) !== viewState(after)) {
    await appendEvent(trx, {
      ...base,
      type: 'device.state_changed',
      data: { device, from: viewState(row), to: viewState(after) },
    });
  }
}

interface Known {
  hostId: string;
  serial: string;
  /** The device's identity (`DeviceInfo.identity`) as of its last time online. */
  identity?: string | undefined;
}

interface ReconnectWaiter {
  deviceId: string;
  previous: Adb;
  resolve(): void;
  reject(error: Error): void;
}

/**
 * The device inventory: persists what the live device layer reports (a stable `dev_` id per host and serial, state,
 * properties, events in the same transaction) and serves the device views and filters.
 *
 * Call `start()` before the hosts are added to the live layer, and `close()` on shutdown.
 */
export class DeviceInventory {
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;
  readonly #live: LiveDevices;
  readonly #log: InventoryLog;
  /** Every device of the database, for synchronous lookups (`assertKnown`, `adbFor`). */
  readonly #known = new Map<string, Known>();
  readonly #availabilityListeners = new Set<() => void>();
  readonly #waiters = new Set<ReconnectWaiter>();
  /**
   * Devices online on one transport while the same device (by identity) is online in the inventory on another, by
   * host and serial: kept out until that one goes offline.
   */
  readonly #duplicates = new Map<string, DeviceUpdate & { identity: string }>();
  /** Live updates are written one at a time, in the order they came. */
  #queue: Promise<void> = Promise.resolve();
  #unsubscribe: (() => void) | null = null;
  #closed = false;
  readonly #records: ((hostId: string) => boolean) | undefined;

  constructor(deps: {
    db: Kysely<DB>;
    clock: () => Date;
    live: LiveDevices;
    log: InventoryLog;
    /**
     * In a cluster, whether this node records what the host's devices do (one node records each host; the others
     * keep their own connections to it for device operations). Without it, this node records every host and is
     * alone: its start finds nothing connected.
     */
    records?: ((hostId: string) => boolean) | undefined;
  }) {
    this.#records = deps.records;
    this.#db = deps.db;
    this.#clock = deps.clock;
    this.#live = deps.live;
    this.#log = deps.log;
  }

  /**
   * Marks every device offline without events (the server just started: nothing is connected yet), loads the known
   * devices, then follows the live layer (first what it already knows, then every update).
   */
  async start(): Promise<void> {
    if (this.#records === undefined) await markAllDevicesOffline(this.#db, this.#clock().toISOString());
    for (const row of await deviceKeys(this.#db)) this.#remember(row.id, row.host_id, row.serial);
    this.#unsubscribe = this.#live.onUpdate((update) => this.#enqueue(update));
    for (const update of this.#live.snapshot()) this.#enqueue(update);
    await this.idle();
  }

  /**
   * In a cluster, once this node records hosts it did not before (it became the leader): the devices of those hosts
   * that the database shows connected but this node does not see online go offline, with their events, then what
   * this node sees is recorded.
   */
  takeOver(): Promise<void> {
    const records = this.#records;
    if (records === undefined || this.#closed) return this.idle();
    this.#enqueueOffline(() => {
      const online = new Set(
        this.#live
          .snapshot()
          .filter((update) => update.state === 'online')
          .map((update) => `${update.hostId}\n${update.serial}`),
      );
      return (row) => records(row.host_id) && !online.has(`${row.host_id}\n${row.serial}`);
    }, 'could not take over recording the device hosts');
    for (const update of this.#live.snapshot()) this.#enqueue(update);
    return this.idle();
  }

  /**
   * Records the devices of the hosts that the database shows connected as offline, with their events: in a
   * cluster, the in-process virtual devices of a node that stopped, which no other node can reach.
   */
  markHostsOffline(hostIds: readonly string[]): Promise<void> {
    if (hostIds.length === 0 || this.#closed) return this.idle();
    const hosts = new Set(hostIds);
    this.#enqueueOffline(() => (row) => hosts.has(row.host_id), 'could not record the devices of stopped hosts');
    return this.idle();
  }

  /**
   * Learns the host and serial of a device another node recorded (a no-op for a known one); then the synchronous
   * lookups (`assertKnown`, `adbFor`) know it. 404 `device_not_found` when the database has no such device.
   */
  async know(deviceId: string): Promise<void> {
    if (this.#known.has(deviceId)) return;
    const row = await findDeviceRow(this.#db, deviceId);
    if (row === undefined) throw noSuchDevice(deviceId);
    this.#learn(row);
  }

  /** `know`, then `adbFor`: the live connection of a device that may have been recorded by another node. */
  async liveAdb(deviceId: string): Promise<Adb> {
    await this.know(deviceId);
    return this.adbFor(deviceId);
  }

  /** Stops following the live layer once the queued updates are written. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    await this.idle();
    for (const waiter of [...this.#waiters]) waiter.reject(new DeviceOfflineError('the server is shutting down'));
  }

  /** Resolves when every update received so far is written. */
  idle(): Promise<void> {
    return this.#queue;
  }

  list(query: DeviceListQuery): Promise<Page<Device>>;
  list(principal: Principal, query: DeviceListQuery): Promise<Page<Device>>;
  async list(first: Principal | DeviceListQuery, second?: DeviceListQuery): Promise<Page<Device>> {
    // Every role may list every device; the principal is accepted for symmetry with the other methods.
    const query = second ?? (first as DeviceListQuery);
    const labels = parseLabelFilters(query.label ?? []);
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, devicePosition);
    const rows = await queryDeviceViews(this.#db, {
      state: query.state,
      kind: query.kind,
      sdkMin: query.sdkMin,
      sdkMax: query.sdkMax,
      abi: query.abi,
      model: query.model,
      labels,
      hostId: query.hostId,
      available: query.available,
      afterId: after?.id,
      limit: query.limit + 1,
    });
    return toPage(rows, query.limit, toDevice, (row) => ({ id: row.id }));
  }

  async get(id: string): Promise<Device> {
    const row = await findDeviceView(this.#db, id);
    if (row === undefined) throw noSuchDevice(id);
    this.#learn(row);
    return toDevice(row);
  }

  /** Throws 404 `device_not_found` unless the device is in the inventory. Synchronous. */
  assertKnown(deviceId: string): void {
    if (!this.#known.has(deviceId)) throw noSuchDevice(deviceId);
  }

  /** The device's live connection, or undefined when it is unknown or not connected. A reconnect gives a new one. */
  connectionOf(deviceId: string): Adb | undefined {
    const known = this.#known.get(deviceId);
    return known === undefined ? undefined : this.#live.adb(known.hostId, known.serial);
  }

  /** The device's live connection: 404 `device_not_found`, or 409 `device_offline` when it is not connected. */
  adbFor(deviceId: string): Adb {
    const known = this.#known.get(deviceId);
    if (known === undefined) throw noSuchDevice(deviceId);
    const adb = this.#live.adb(known.hostId, known.serial);
    if (adb === undefined) throw new ApiError('device_offline', `Device ${deviceId} is not connected.`);
    return adb;
  }

  /**
   * Resolves once the device is online again over a connection other than `previous` (after a reboot); rejects with
   * `DeviceTimeoutError` after `timeoutMs`, or `DeviceOfflineError` when the device leaves the inventory. The promise
   * is marked handled, so it may be dropped when the reboot itself fails.
   */
  waitForReconnect(deviceId: string, previous: Adb, timeoutMs: number): Promise<void> {
    const promise = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        finish();
        reject(new DeviceTimeoutError(timeoutMs, 'the device coming back'));
      }, timeoutMs);
      timer.unref();
      const finish = () => {
        clearTimeout(timer);
        this.#waiters.delete(waiter);
      };
      const waiter: ReconnectWaiter = {
        deviceId,
        previous,
        resolve: () => {
          finish();
          resolve();
        },
        reject: (error) => {
          finish();
          reject(error);
        },
      };
      this.#waiters.add(waiter);
    });
    promise.catch(() => undefined);
    return promise;
  }

  /**
   * Sets labels (`null` removes one) and the maintenance flag. Turning maintenance on or off records
   * `device.state_changed`; label changes record no event.
   */
  async update(principal: Principal, id: string, patch: DevicePatch, requestId: string | null): Promise<Device> {
    const now = this.#clock();
    const cause: Cause = { actor: principalActor(principal), requestId };
    const maintenanceOff = await this.#db.transaction().execute(async (trx) => {
      const row = await findDeviceRow(trx, id);
      if (row === undefined) throw noSuchDevice(id);
      const labels = JSON.parse(row.labels) as Record<string, string>;
      let labelsChanged = false;
      for (const [key, value] of Object.entries(patch.labels ?? {})) {
        if (value === null) {
          if (key in labels) {
            delete labels[key];
            labelsChanged = true;
          }
        } else if (labels[key] !== value) {
          labels[key] = value;
          labelsChanged = true;
        }
      }
      const maintenance = patch.maintenance === undefined ? row.maintenance : patch.maintenance ? 1 : 0;
      if (!labelsChanged && maintenance === row.maintenance) return false;
      const sortedLabels = Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      const at = now.toISOString();
      await updateDeviceRow(trx, id, { labels: JSON.stringify(sortedLabels), maintenance, updated_at: at });
      if (maintenance !== row.maintenance) {
        const after = { ...row, maintenance };
        await appendEvent(trx, {
          type: 'device.state_changed',
          actor: cause.actor,
          requestId: cause.requestId,
          subject: { type: 'device', id },
          data: { device: toDeviceSummary(after), from: viewState(row), to: viewState(after) },
          occurredAt: now,
        });
      }
      return maintenance === 0 && row.maintenance === 1;
    });
    if (maintenanceOff) this.availabilityChanged();
    return this.get(id);
  }

  /** Sets the `resetting` flag (the lease service's reset flow); clearing it reports an availability change. */
  async setResetting(deviceId: string, on: boolean): Promise<void> {
    await updateDeviceRow(this.#db, deviceId, { resetting: on ? 1 : 0, updated_at: this.#clock().toISOString() });
    if (!on) this.availabilityChanged();
  }

  /**
   * Calls `listener` after any change that can make a device newly available: it came online, left maintenance, its
   * reset finished, its host stopped draining. Returns the unsubscribe function.
   */
  onAvailabilityChange(listener: () => void): () => void {
    this.#availabilityListeners.add(listener);
    return () => this.#availabilityListeners.delete(listener);
  }

  /** Tells the availability listeners that a device may have become available (the host service calls it too). */
  availabilityChanged(): void {
    for (const listener of [...this.#availabilityListeners]) {
      try {
        listener();
      } catch (error) {
        this.#log.error({ err: error }, 'device availability listener failed');
      }
    }
  }

  /** Forgets the devices of a deleted host (the host service calls it once the deletion committed). */
  forgetHost(hostId: string): void {
    for (const [key, twin] of [...this.#duplicates]) if (twin.hostId === hostId) this.#duplicates.delete(key);
    for (const [id, known] of [...this.#known]) {
      if (known.hostId !== hostId) continue;
      this.#known.delete(id);
      for (const waiter of [...this.#waiters]) {
        if (waiter.deviceId === id) waiter.reject(new DeviceOfflineError('the device left the inventory'));
      }
    }
  }

  // ---------------------------------------------------------------------------------------------------------------

  #enqueue(update: DeviceUpdate): void {
    if (this.#closed) return;
    this.#queue = this.#queue
      .then(() => this.#apply(update))
      .catch((error: unknown) => {
        const { hostId, serial } = update;
        this.#log.error({ err: error, hostId, serial }, 'could not record a device update');
      });
  }

  async #apply(update: DeviceUpdate): Promise<void> {
    if (this.#records !== undefined && !this.#records(update.hostId)) {
      const row = await findDeviceBySerial(this.#db, update.hostId, update.serial);
      if (row !== undefined) this.#learn(row);
      return;
    }
    const key = `${update.hostId}\n${update.serial}`;
    const identity = update.state === 'online' ? (update.info?.identity ?? undefined) : undefined;
    if (identity !== undefined) {
      const twin = this.#onlineTwin(update, identity);
      if (twin !== undefined) {
        if (!this.#duplicates.has(key)) {
          this.#log.warn(
            { hostId: update.hostId, serial: update.serial, deviceId: twin },
            'a device online in the inventory through another transport; ignoring this one while that one is online',
          );
        }
        this.#duplicates.set(key, { ...update, identity });
        return;
      }
    }
    // A duplicate that goes away without ever having entered the inventory leaves no trace.
    if (this.#duplicates.delete(key) && update.state !== 'online' && this.#idOf(update.hostId, update.serial) === undefined) {
      return;
    }
    const now = this.#clock();
    const at = now.toISOString();
    const result = await this.#db.transaction().execute(async (trx) => {
      if ((await findHostRow(trx, update.hostId)) === undefined) return undefined; // the host was removed
      const row = await findDeviceBySerial(trx, update.hostId, update.serial);
      const info = update.info;
      const fromInfo =
        info === null
          ? {}
          : {
              properties: JSON.stringify(info.properties),
              battery: info.battery === null ? null : JSON.stringify(info.battery),
              sdk: info.properties.sdk,
              model: info.properties.model,
              abis: JSON.stringify(info.properties.abis),
            };
      if (row === undefined) {
        const created: DeviceRow = {
          id: newId('dev', now.getTime()),
          host_id: update.hostId,
          serial: update.serial,
          kind: update.kind,
          state: update.state,
          maintenance: 0,
          resetting: 0,
          resetting_node: null,
          labels: '{}',
          properties: null,
          battery: null,
          sdk: null,
          model: null,
          abis: '[]',
          ...fromInfo,
          first_seen_at: at,
          last_seen_at: at,
          updated_at: at,
        };
        await insertDeviceRow(trx, created);
        // A device seen for the first time was, as far as anyone knew, offline.
        await recordLiveTransition(trx, { ...created, state: 'offline' }, update.state, systemCause, now);
        return { id: created.id, from: 'offline' as LiveState, maintenance: 0 };
      }
      const seen = update.state !== 'offline' || row.state !== 'offline';
      const changes = {
        ...(update.kind !== row.kind ? { kind: update.kind } : {}),
        ...(update.state !== row.state ? { state: update.state } : {}),
        ...Object.fromEntries(Object.entries(fromInfo).filter(([key, value]) => row[key as keyof DeviceRow] !== value)),
        ...(seen ? { last_seen_at: at } : {}),
      };
      if (Object.keys(changes).length > 0) await updateDeviceRow(trx, row.id, { ...changes, updated_at: at });
      await recordLiveTransition(trx, row, update.state, systemCause, now);
      return { id: row.id, from: row.state, maintenance: row.maintenance };
    });
    if (result === undefined) return;
    const previous = this.#known.get(result.id)?.identity;
    this.#remember(result.id, update.hostId, update.serial, identity ?? previous);
    if (update.state !== 'online' && previous !== undefined) this.#readmitTwins(previous);
    if (update.state === 'online') {
      for (const waiter of [...this.#waiters]) {
        if (waiter.deviceId !== result.id) continue;
        const adb = this.#live.adb(update.hostId, update.serial);
        if (adb !== undefined && adb !== waiter.previous) waiter.resolve();
      }
      if (result.from !== 'online' && result.maintenance === 0) this.availabilityChanged();
    }
  }

  /**
   * Queues, after the updates received so far: the connected devices that `stale` (asked when the turn comes)
   * picks go offline, each with its event in a transaction of its own.
   */
  #enqueueOffline(stale: () => (row: DeviceRow) => boolean, failure: string): void {
    this.#queue = this.#queue
      .then(async () => {
        const picked = (await connectedDevices(this.#db)).filter(stale());
        const now = this.#clock();
        for (const { id } of picked) {
          await this.#db.transaction().execute(async (trx) => {
            const current = await findDeviceRow(trx, id);
            if (current === undefined || current.state === 'offline') return;
            await updateDeviceRow(trx, id, { state: 'offline', updated_at: now.toISOString() });
            await recordLiveTransition(trx, current, 'offline', systemCause, now);
          });
        }
      })
      .catch((error: unknown) => this.#log.error({ err: error }, failure));
  }

  /** Remembers a device read from the database, unless it is known already. */
  #learn(row: Pick<DeviceRow, 'id' | 'host_id' | 'serial'>): void {
    if (!this.#known.has(row.id)) this.#remember(row.id, row.host_id, row.serial);
  }

  #remember(id: string, hostId: string, serial: string, identity?: string): void {
    this.#known.set(id, { hostId, serial, identity });
  }

  #idOf(hostId: string, serial: string): string | undefined {
    for (const [id, known] of this.#known) if (known.hostId === hostId && known.serial === serial) return id;
    return undefined;
  }

  /** The inventory device, other than the one `update` is about, that is online now with `identity`. */
  #onlineTwin(update: DeviceUpdate, identity: string): string | undefined {
    for (const [id, known] of this.#known) {
      if (known.identity !== identity || (known.hostId === update.hostId && known.serial === update.serial)) continue;
      if (this.#live.adb(known.hostId, known.serial) !== undefined) return id;
    }
    return undefined;
  }

  /** A device with `identity` went offline: its twins still online on other transports may now take its place. */
  #readmitTwins(identity: string): void {
    for (const [key, twin] of [...this.#duplicates]) {
      if (twin.identity !== identity) continue;
      this.#duplicates.delete(key);
      if (this.#live.adb(twin.hostId, twin.serial) !== undefined) this.#enqueue(twin);
    }
  }
}
