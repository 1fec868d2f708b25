import { Socket } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import type { ServerConfig } from '../config.js';
import { newId } from '../db/ids.js';
import type { DB } from '../db/schema.js';
import { appendEvent } from '../events/log.js';
import { principalActor, systemCause, type Cause } from '../events/types.js';
import type { Cluster } from '../cluster/cluster.js';
import { ApiError } from '../http/errors.js';
import type { Principal } from '../http/handler.js';
import { recordLiveTransition } from './inventory.js';
import {
  deleteDevicesOfHost,
  deleteHostRow,
  devicesOfHost,
  findHostByAddress,
  findHostRow,
  hostDeviceCounts,
  insertHostRow,
  listHostRows,
  updateHostRow,
  type HostRow,
} from './repository.js';
import type { HostLiveStatus, HostType, LiveDevices } from './types.js';
import { toHost, type Host } from './view.js';

/** The local ADB server tracked per `localAdb`. */
export const LOCAL_ADB_ADDRESS = '127.0.0.1:5037';
/** The address of the in-process virtual host. */
export const VIRTUAL_ADDRESS = 'in-process';
const LOCAL_ADB_PROBE_MS = 300;

export type HostConfig = Pick<ServerConfig, 'adbServers' | 'adbDevices' | 'localAdb' | 'virtualDevices'>;

export type HostLog = Pick<FastifyBaseLogger, 'info' | 'warn' | 'error'>;

/**
 * Ends the active leases holding devices of a host (end reason `host_removed`) inside the caller's transaction, with
 * their events: the lease service's `endLeasesForHost`. What it returns may carry an `afterCommit` to run once the
 * transaction committed.
 */
export type EndLeasesForHost = (
  trx: Kysely<DB>,
  hostId: string,
  cause: Cause,
) => Promise<{ afterCommit?(): void } | void>;

/** What the host service needs from the inventory. */
export interface HostInventory {
  availabilityChanged(): void;
  forgetHost(hostId: string): void;
}

export interface NewHost {
  type: 'adb_server' | 'adb_device';
  address: string;
  name?: string | undefined;
}

export interface HostPatch {
  name?: string | undefined;
  draining?: boolean | undefined;
}

interface DeclaredHost {
  type: HostType;
  address: string;
}

/** Whether something accepts TCP connections at `host:port` within `timeoutMs`. */
export function probeTcp(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (answered: boolean) => {
      socket.destroy();
      resolve(answered);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.connect(port, host);
  });
}

/** The node whose in-process virtual devices the host is, in a cluster (`in-process/<node>`). */
function virtualHostNode(row: Pick<HostRow, 'type' | 'address'>): string | undefined {
  const prefix = `${VIRTUAL_ADDRESS}/`;
  return row.type === 'virtual' && row.address.startsWith(prefix) ? row.address.slice(prefix.length) : undefined;
}

function noSuchHost(id: string): ApiError {
  return new ApiError('host_not_found', `No host ${id}.`);
}

/** The device hosts: the table, the config-declared ones at boot, and the live layer's tracking of each. */
export class HostService {
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;
  readonly #live: LiveDevices;
  readonly #config: HostConfig;
  readonly #log: HostLog;
  readonly #inventory: HostInventory;
  readonly #endLeasesForHost: EndLeasesForHost;
  readonly #probeLocalAdb: () => Promise<boolean>;
  readonly #cluster: Cluster | null;
  /** Per host: whether it was last seen connected or unreachable (between retries it stays what it was). */
  readonly #reachable = new Map<string, boolean>();
  /** Host reachability events are appended one after the other, in the order the transitions happened. */
  #reachability: Promise<void> = Promise.resolve();

  constructor(deps: {
    db: Kysely<DB>;
    clock: () => Date;
    live: LiveDevices;
    config: HostConfig;
    log: HostLog;
    inventory: HostInventory;
    endLeasesForHost: EndLeasesForHost;
    /** Whether the local ADB server answers (for `localAdb: auto`); a quick TCP connect by default. */
    probeLocalAdb?: () => Promise<boolean>;
    /** The nodes sharing the database; a lone node by default. */
    cluster?: Cluster | undefined;
  }) {
    this.#cluster = deps.cluster ?? null;
    this.#db = deps.db;
    this.#clock = deps.clock;
    this.#live = deps.live;
    this.#config = deps.config;
    this.#log = deps.log;
    this.#inventory = deps.inventory;
    this.#endLeasesForHost = deps.endLeasesForHost;
    this.#probeLocalAdb = deps.probeLocalAdb ?? (() => probeTcp('127.0.0.1', 5037, LOCAL_ADB_PROBE_MS));
  }

  /**
   * Makes the config-origin hosts match the configuration (adding the declared ones, removing those no longer
   * declared, with their devices), then starts tracking every host of the table. Start the inventory first.
   */
  async start(): Promise<void> {
    const declared = await this.#declaredHosts();
    const now = this.#clock();
    const at = now.toISOString();
    for (const host of declared) {
      if ((await findHostByAddress(this.#db, host.type, host.address)) !== undefined) continue;
      await insertHostRow(this.#db, {
        id: newId('hst', now.getTime()),
        type: host.type,
        address: host.address,
        name: host.address,
        origin: 'config',
        draining: 0,
        created_at: at,
        updated_at: at,
      });
      this.#log.info({ type: host.type, address: host.address }, 'added a host from the configuration');
    }
    const wanted = new Set(declared.map((host) => `${host.type} ${host.address}`));
    for (const row of await listHostRows(this.#db)) {
      if (row.origin !== 'config' || wanted.has(`${row.type} ${row.address}`) || !this.#ownConfig(row)) continue;
      await this.#remove(row.id, systemCause, false);
      this.#log.info({ type: row.type, address: row.address }, 'removed a host no longer in the configuration');
    }
    this.#live.onHostStatus((hostId, status) => this.#statusChanged(hostId, status));
    for (const row of await listHostRows(this.#db)) this.track(row);
  }

  /**
   * Connects to a host of the table (a no-op for one tracked already). In-process virtual devices are only ever
   * tracked by the node that runs them.
   */
  track(row: Pick<HostRow, 'id' | 'type' | 'address'>): void {
    if (row.type === 'virtual' && row.address !== this.#virtualAddress()) return;
    this.#live.addHost({ id: row.id, type: row.type, address: row.address });
  }

  /** In a cluster, the in-process virtual hosts of nodes not in `live`: no node can reach their devices now. */
  async virtualHostsOfStoppedNodes(live: ReadonlySet<string>): Promise<string[]> {
    if (this.#cluster?.shared !== true) return [];
    return (await listHostRows(this.#db))
      .filter((row) => {
        const node = virtualHostNode(row);
        return node !== undefined && !live.has(node);
      })
      .map((row) => row.id);
  }

  /** Disconnects from a host another node deleted and forgets its devices. */
  async untrack(hostId: string): Promise<void> {
    this.#reachable.delete(hostId);
    this.#inventory.forgetHost(hostId);
    await this.#live.removeHost(hostId);
  }

  async list(): Promise<Host[]> {
    const [rows, counts, leader] = await Promise.all([
      listHostRows(this.#db),
      hostDeviceCounts(this.#db),
      this.#leader(),
    ]);
    return rows.map((row) => toHost(row, this.#status(row.id), counts.get(row.id), this.#trackedBy(row, leader)));
  }

  async get(id: string): Promise<Host> {
    const row = await findHostRow(this.#db, id);
    if (row === undefined) throw noSuchHost(id);
    return this.#view(row);
  }

  /** Adds a host (409 `host_exists` for the same type and address) and starts tracking it. */
  async create(principal: Principal, input: NewHost, requestId: string | null): Promise<Host> {
    void principal;
    void requestId; // Adding a host records no event; the principal and request id are for symmetry.
    const now = this.#clock();
    const at = now.toISOString();
    const row: HostRow = {
      id: newId('hst', now.getTime()),
      type: input.type,
      address: input.address,
      name: input.name ?? input.address,
      origin: 'api',
      draining: 0,
      created_at: at,
      updated_at: at,
    };
    if (!(await insertHostRow(this.#db, row))) {
      throw new ApiError('host_exists', `There is already a host ${input.type} ${input.address}.`);
    }
    this.track(row);
    this.#cluster?.publish('host.added', { id: row.id, type: row.type, address: row.address });
    return this.#view(row);
  }

  /** Renames a host or sets its draining flag; no longer draining reports an availability change. */
  async update(principal: Principal, id: string, patch: HostPatch, requestId: string | null): Promise<Host> {
    void principal;
    void requestId;
    const now = this.#clock();
    const { row, undrained } = await this.#db.transaction().execute(async (trx) => {
      const row = await findHostRow(trx, id);
      if (row === undefined) throw noSuchHost(id);
      const name = patch.name ?? row.name;
      const draining = patch.draining === undefined ? row.draining : patch.draining ? 1 : 0;
      if (name === row.name && draining === row.draining) return { row, undrained: false };
      const updated: HostRow = { ...row, name, draining, updated_at: now.toISOString() };
      await updateHostRow(trx, id, { name, draining, updated_at: updated.updated_at });
      return { row: updated, undrained: row.draining === 1 && draining === 0 };
    });
    if (undrained) this.#inventory.availabilityChanged();
    return this.#view(row);
  }

  /**
   * Deletes a host: in one transaction, ends the leases holding its devices (`host_removed`), records its online
   * devices going offline, and deletes its devices and the host; then stops tracking it. A config-origin host may be
   * deleted too, but it comes back at the next start while the configuration still declares it.
   */
  async delete(principal: Principal, id: string, requestId: string | null): Promise<void> {
    await this.#remove(id, { actor: principalActor(principal), requestId }, true);
  }

  // ---------------------------------------------------------------------------------------------------------------

  async #remove(id: string, cause: Cause, tracked: boolean): Promise<void> {
    const now = this.#clock();
    const ended = await this.#db.transaction().execute(async (trx) => {
      if ((await findHostRow(trx, id)) === undefined) throw noSuchHost(id);
      const ended = await this.#endLeasesForHost(trx, id, cause);
      for (const device of await devicesOfHost(trx, id)) {
        await recordLiveTransition(trx, device, 'offline', cause, now);
      }
      await deleteDevicesOfHost(trx, id);
      await deleteHostRow(trx, id);
      return ended;
    });
    try {
      ended?.afterCommit?.();
    } catch (error) {
      this.#log.error({ err: error, hostId: id }, 'could not finish ending the leases of a removed host');
    }
    this.#reachable.delete(id);
    this.#inventory.forgetHost(id);
    this.#cluster?.publish('host.removed', { id });
    if (tracked) await this.#live.removeHost(id);
  }

  /**
   * Records a host going from connected to unreachable (`host.unreachable`) and back (`host.reachable`): once per
   * transition, not per retry. The leader records them, as it records what the hosts report.
   */
  #statusChanged(hostId: string, status: HostLiveStatus): void {
    if (status.status === 'connecting') return;
    const reachable = status.status === 'connected';
    const was = this.#reachable.get(hostId);
    // A host never connected to is not one that became unreachable.
    if (was === undefined && !reachable) return;
    this.#reachable.set(hostId, reachable);
    if (was === undefined || was === reachable || this.#cluster?.isLeader() === false) return;
    const at = this.#clock();
    this.#reachability = this.#reachability.then(async () => {
      try {
        await this.#db.transaction().execute(async (trx) => {
          const row = await findHostRow(trx, hostId);
          if (row === undefined) return;
          const host = { id: row.id, name: row.name, address: row.address, type: row.type };
          const base = { actor: systemCause.actor, subject: { type: 'host', id: hostId }, requestId: null, occurredAt: at } as const;
          if (reachable) await appendEvent(trx, { ...base, type: 'host.reachable', data: { host } });
          else await appendEvent(trx, { ...base, type: 'host.unreachable', data: { host, error: status.lastError ?? 'unreachable' } });
        });
      } catch (error) {
        this.#log.error({ err: error, hostId }, 'could not record a change of host reachability');
      }
    });
  }

  /**
   * Whether this node's configuration decides if the config-origin host stays: on a lone node, every one; in a
   * cluster, where each node has its own configuration, only this node's in-process virtual host (the others are
   * deleted through the API).
   */
  #ownConfig(row: HostRow): boolean {
    if (this.#cluster?.shared !== true) return true;
    return row.type === 'virtual' && row.address === this.#virtualAddress();
  }

  /** The address of this node's in-process virtual host: in a cluster, one per node. */
  #virtualAddress(): string {
    return this.#cluster?.shared === true ? `${VIRTUAL_ADDRESS}/${this.#cluster.node}` : VIRTUAL_ADDRESS;
  }

  /** The node leading the cluster; null without a cluster. */
  async #leader(): Promise<string | null> {
    return this.#cluster === null ? null : this.#cluster.leader();
  }

  /** The node recording the host's devices (see `Host.trackedBy`), given the node leading now. */
  #trackedBy(row: HostRow, leader: string | null): string | null {
    if (this.#cluster === null) return null;
    if (row.type !== 'virtual') return leader;
    if (!this.#cluster.shared) return this.#cluster.node;
    return virtualHostNode(row) ?? null;
  }

  async #declaredHosts(): Promise<DeclaredHost[]> {
    const { adbServers, adbDevices, localAdb, virtualDevices } = this.#config;
    const hosts: DeclaredHost[] = adbServers.map((address) => ({ type: 'adb_server', address }));
    if (!adbServers.includes(LOCAL_ADB_ADDRESS)) {
      const local = localAdb === 'on' || (localAdb === 'auto' && (await this.#probeLocalAdb()));
      if (local) hosts.push({ type: 'adb_server', address: LOCAL_ADB_ADDRESS });
    }
    for (const address of adbDevices) hosts.push({ type: 'adb_device', address });
    if (virtualDevices > 0) hosts.push({ type: 'virtual', address: this.#virtualAddress() });
    return hosts;
  }

  async #view(row: HostRow): Promise<Host> {
    const [counts, leader] = await Promise.all([hostDeviceCounts(this.#db, row.id), this.#leader()]);
    return toHost(row, this.#status(row.id), counts.get(row.id), this.#trackedBy(row, leader));
  }

  #status(hostId: string): HostLiveStatus {
    try {
      return this.#live.hostStatus(hostId);
    } catch {
      return { status: 'connecting', lastError: null, nextRetryAt: null };
    }
  }
}
