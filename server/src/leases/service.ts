import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import type { Cluster } from '../cluster/cluster.js';
import { lockForTransaction } from '../db/dialect.js';
import { ulid } from '../db/ids.js';
import type { DB } from '../db/schema.js';
import type { DeviceBaseline, DeviceReset } from '../devices/types.js';
import { appendEvent } from '../events/log.js';
import { principalActor, systemCause, type Cause, type EventData } from '../events/types.js';
import { ApiError, type FieldError } from '../http/errors.js';
import type { Principal } from '../http/handler.js';
import { decodeCursor, idPosition, toPage, type Page } from '../pagination.js';
import { Waiters } from '../waiters.js';
import {
  ACTIVE_STATUSES,
  activeLeases,
  activeLeasesOfUser,
  endLeaseRow,
  findBaseline,
  parseBaseline,
  findLease,
  findLeaseDevices,
  claimReset,
  heldDevices,
  holderOf,
  leaseAwaitingBaseline,
  orphanedResets,
  insertLease,
  insertLeaseDevices,
  leasesOnHost,
  leasesToWarn,
  markExpiryWarned,
  markGranted,
  overdueLeases,
  queryLeases,
  queuedLeaseIds,
  queuedLeases,
  queuePositionOf,
  releaseLeaseDevices,
  renewLeaseRow,
  schedulableDevices,
  setBaseline,
  setDevicesResetting,
  setReset,
  type LeaseRow,
  type LeaseStatus,
  type ReleasedDevice,
} from './repository.js';
import {
  matchesSelector,
  schedule,
  type DeviceSelector,
  type Grant,
  type QueuedLease,
  type SchedulableDevice,
} from './scheduler.js';
import { toLease, toLeaseSummary, type Lease, type LeaseEndReason } from './view.js';

/** What the lease service needs from the device layer; the app wires it to the inventory and device operations. */
export interface LeaseDeviceOps {
  /** The device's state now (third-party packages, shared storage): the baseline its reset restores. */
  snapshot(deviceId: string): Promise<DeviceBaseline>;
  /**
   * Uninstalls third-party packages not in `baseline`, clears /data/local/tmp, removes what was created in the
   * shared storage since `baseline`, and reports how the device still differs from it.
   */
  reset(deviceId: string, baseline: DeviceBaseline): Promise<Omit<DeviceReset, 'status' | 'finishedAt'>>;
  /** Sets the device's `resetting` flag; clearing it makes the device available again (and reports that). */
  setResetting(deviceId: string, on: boolean): Promise<void>;
  /** Called whenever a device may have become available (came online, left maintenance, host stopped draining…). */
  onAvailabilityChange(listener: () => void): () => void;
  /** The device's current connection (a new object after every reconnect); undefined while it is not connected. */
  connectionOf(deviceId: string): object | undefined;
}

export interface NewLease {
  selector?: DeviceSelector | undefined;
  count?: number | undefined;
  ttlSeconds?: number | undefined;
  waitSeconds?: number | undefined;
  note?: string | null | undefined;
  project?: string | null | undefined;
}

/** What a lease asks of its user's quotas and budgets. */
export interface BillingRequest {
  userId: string;
  project: string | null;
  count: number;
  ttlSeconds: number;
}

/** Why billing does not admit a lease now; `waitable` when it may later without a plan or a budget changing. */
export interface BillingRefusal {
  error: ApiError;
  waitable: boolean;
}

/**
 * One transaction's view of the quotas and budgets of the leases it decides on. It starts with the plans only, and
 * reads what is used at `prepare()`, which a grant needs: a request refused for want of devices costs no more.
 */
export interface LeaseAdmission {
  prepare(): Promise<void>;
  /**
   * Why the lease cannot be granted these devices now; without devices, only what no device choice changes; before
   * `prepare()`, only the plan's own limits (the TTL, the size of the request).
   */
  check(request: BillingRequest, devices?: readonly SchedulableDevice[]): BillingRefusal | undefined;
  /** Counts a grant made in this transaction. */
  granted(request: BillingRequest, devices: readonly SchedulableDevice[]): void;
}

/** A released device's time, for metering. */
export interface MeteredDevice {
  deviceId: string;
  billingClass: string;
  meteredFrom: string;
}

/** What the lease service needs from billing: quotas and budgets at every grant, and metering at every end. */
export interface LeaseBilling {
  admission(trx: Kysely<DB>, leases: readonly { userId: string; project: string | null }[], now: Date): Promise<LeaseAdmission>;
  classOf(device: SchedulableDevice): string;
  /** Records the device time of an ending lease, in the transaction that ends it. */
  meter(
    trx: Kysely<DB>,
    lease: { id: string; user_id: string; project: string | null; expires_at: string | null },
    devices: readonly MeteredDevice[],
    at: Date,
  ): Promise<void>;
  /** Records that a request was refused for a quota (after its transaction rolled back). */
  refused(userId: string, error: ApiError, cause: Cause): Promise<void>;
}

export interface LeaseListQuery {
  status?: LeaseStatus[] | undefined;
  userId?: string | undefined;
  allUsers?: boolean | undefined;
  cursor?: string | undefined;
  limit: number;
}

export interface CreatedLease {
  /** 201 granted, 202 queued. */
  status: 201 | 202;
  lease: Lease;
}

/** The leases a host's removal ended; call `afterCommit` once the caller's transaction has committed. */
export interface EndedLeases {
  leaseIds: string[];
  deviceIds: string[];
  afterCommit(): void;
}

/**
 * Told when a lease ends, before its devices are reset. A returned promise holds the reset of the lease's devices
 * until it settles: work still running on them (an install) finishes first, so the reset undoes it too.
 */
export type LeaseEndedListener = (ended: {
  leaseId: string;
  userId: string;
  deviceIds: string[];
}) => void | Promise<unknown>;

type LeaseLog = Pick<FastifyBaseLogger, 'warn' | 'error'>;

export const DEFAULT_COUNT = 1;
export const DEFAULT_TTL_SECONDS = 900;
/**
 * The lock every transaction that grants or ends leases holds: one decision at a time over the queue and the free
 * devices, across connections and server processes.
 */
export const SCHEDULING_LOCK = 'leases.scheduling';

/** How long after a grant a device operation on another node waits for the baseline the granting node reads. */
const BASELINE_WAIT_MS = 10_000;
const leasePosition = idPosition(/^lse_[0-9A-Z]{26}$/);

type LeaseEventType =
  | 'lease.queued'
  | 'lease.granted'
  | 'lease.renewed'
  | 'lease.released'
  | 'lease.expired'
  | 'lease.expiring'
  | 'device.reset';

async function record<T extends LeaseEventType>(
  db: Kysely<DB>,
  type: T,
  cause: Cause,
  subject: { type: 'lease' | 'device'; id: string },
  data: EventData<T>,
  at: Date,
): Promise<void> {
  await appendEvent(db, { type, actor: cause.actor, subject, data, requestId: cause.requestId, occurredAt: at });
}

/** Who holds a device, for the authorisation check on every device operation. */
interface Holder {
  leaseId: string;
  userId: string;
  expiresAtMs: number;
}

interface EndedLease {
  leaseId: string;
  userId: string;
  devices: ReleasedDevice[];
  reset: boolean;
}

/** What a transaction changed that, once committed, the in-memory state and the device layer must follow. */
interface Effects {
  granted: { leaseId: string; userId: string; expiresAtMs: number; deviceIds: string[] }[];
  ended: EndedLease[];
  /** Leases whose status changed: long polls on them resolve. */
  changed: Set<string>;
  /** Devices or reservations were freed: run the scheduler. */
  reschedule: boolean;
}

function newEffects(): Effects {
  return { granted: [], ended: [], changed: new Set(), reschedule: false };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function intInRange(field: string, value: number, min: number, max: number, errors: FieldError[]): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    errors.push({ field: `/${field}`, message: `must be an integer from ${min} to ${max}` });
  }
}

/** The selector with only the criteria given, device ids deduplicated; rejects contradictory ranges. */
export function normaliseSelector(selector: DeviceSelector): DeviceSelector {
  const out: DeviceSelector = {};
  if (selector.deviceIds !== undefined) out.deviceIds = [...new Set(selector.deviceIds)];
  if (selector.model !== undefined) out.model = selector.model;
  if (selector.kind !== undefined) out.kind = selector.kind;
  if (selector.sdkMin !== undefined) out.sdkMin = selector.sdkMin;
  if (selector.sdkMax !== undefined) out.sdkMax = selector.sdkMax;
  if (selector.abi !== undefined) out.abi = selector.abi;
  if (selector.labels !== undefined) out.labels = { ...selector.labels };
  if (selector.hostId !== undefined) out.hostId = selector.hostId;
  if (out.sdkMin !== undefined && out.sdkMax !== undefined && out.sdkMin > out.sdkMax) {
    throw new ApiError('validation_failed', 'selector.sdkMin must not exceed selector.sdkMax.', {
      errors: [{ field: '/selector/sdkMin', message: 'must not exceed sdkMax' }],
    });
  }
  return out;
}

/**
 * Leases: who may use which devices, and when. Queued leases are granted fairly (FIFO with backfill, see
 * scheduler.ts); ended leases give their devices back only after each device's reset.
 */
export class LeaseService {
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;
  readonly #log: LeaseLog;
  readonly #devices: LeaseDeviceOps;
  readonly #sweepIntervalMs: number;
  readonly #billing: LeaseBilling | undefined;

  /** deviceId → holder of the granted lease containing it. */
  readonly #holders = new Map<string, Holder>();
  /** leaseId → devices it holds (granted leases only). */
  readonly #leaseDevices = new Map<string, string[]>();
  readonly #waiters: Waiters;
  /** Device operations on other nodes waiting for a baseline this node reads, by `leaseId:deviceId`. */
  readonly #baselines: Waiters;
  readonly #cluster: Cluster | undefined;
  readonly #endedListeners = new Set<LeaseEndedListener>();
  /** Per device: its state when clean, valid while it stays on the connection it was read on. */
  readonly #cleanStates = new Map<string, { connection: object; baseline: DeviceBaseline }>();
  /** Background work: resets, baseline snapshots, scheduler runs, sweeps. */
  readonly #inFlight = new Set<Promise<unknown>>();
  /** `leaseId:deviceId` → the baseline snapshot being taken. */
  readonly #snapshots = new Map<string, Promise<void>>();

  #scheduling: Promise<void> | null = null;
  /** Settles when this process's last transaction under the scheduling lock has. */
  #schedulingTurn: Promise<void> = Promise.resolve();
  #scheduleAgain = false;
  #sweeping = false;
  #timer: NodeJS.Timeout | null = null;
  #unsubscribe: (() => void) | null = null;
  #closed = false;

  constructor(deps: {
    db: Kysely<DB>;
    clock: () => Date;
    log: LeaseLog;
    devices: LeaseDeviceOps;
    sweepIntervalMs?: number | undefined;
    /** The nodes sharing the database: only the leader sweeps, and long polls are answered across nodes. */
    cluster?: Cluster | undefined;
    /** Quotas and budgets checked at every grant, and device time metered at every end. */
    billing?: LeaseBilling | undefined;
  }) {
    this.#cluster = deps.cluster;
    this.#billing = deps.billing;
    this.#waiters = new Waiters(deps.cluster && { cluster: deps.cluster, name: 'leases' });
    this.#baselines = new Waiters(deps.cluster && { cluster: deps.cluster, name: 'baselines' });
    this.#db = deps.db;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#devices = deps.devices;
    this.#sweepIntervalMs = deps.sweepIntervalMs ?? 1000;
  }

  /** Rebuilds the holder index, starts the expiry sweeper and schedules once. */
  async start(): Promise<void> {
    this.#closed = false;
    await this.#rebuildIndex();
    this.#unsubscribe = this.#devices.onAvailabilityChange(() => this.#kick());
    this.#timer = setInterval(() => this.#tick(), this.#sweepIntervalMs);
    this.#timer.unref();
    await this.schedule();
  }

  /** Stops the sweeper, releases long polls and waits for in-flight resets. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#waiters.wakeAll();
    await this.settled();
  }

  /** Resolves once no reset, baseline snapshot, sweep or scheduler run is in flight. */
  async settled(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /**
   * In a cluster, resets the devices whose reset a node that stopped left unfinished (the leader calls it with the
   * nodes alive): each is claimed, so that one node runs it, then reset here against its lease's baseline.
   */
  async recoverOrphanedResets(live: ReadonlySet<string>): Promise<void> {
    const node = this.#cluster?.node;
    if (node === undefined) return;
    for (const orphan of await orphanedResets(this.#db, live)) {
      if (!(await claimReset(this.#db, orphan.deviceId, orphan.node, node))) continue;
      this.#log.warn(
        { deviceId: orphan.deviceId, leaseId: orphan.leaseId, node: orphan.node },
        'resetting a device whose reset a stopped node left unfinished',
      );
      const { leaseId, deviceId, state, baseline } = orphan;
      this.#resetDevice(leaseId, { deviceId, state, baseline }, Promise.resolve());
    }
  }

  onLeaseEnded(listener: LeaseEndedListener): () => void {
    this.#endedListeners.add(listener);
    return () => this.#endedListeners.delete(listener);
  }

  /**
   * Rejects with 403 lease_required unless the caller may operate the device: admins always, others while they hold
   * a granted, unexpired lease containing it. This runs on every device operation: a lone node answers from memory;
   * in a cluster, where another node may have granted, renewed or ended the lease a moment ago, from the database.
   */
  async assertCanOperate(principal: Principal, deviceId: string): Promise<void> {
    if (principal.role === 'admin') return;
    const holder = this.#cluster?.shared === true ? await this.#storedHolder(deviceId) : this.#holders.get(deviceId);
    if (holder !== undefined && holder.userId === principal.userId && holder.expiresAtMs > this.#clock().getTime()) {
      return;
    }
    throw new ApiError('lease_required', `Operating device ${deviceId} needs a granted lease containing it.`);
  }

  /** The device's holder as the database records it. */
  async #storedHolder(deviceId: string): Promise<{ userId: string; expiresAtMs: number } | undefined> {
    const row = await holderOf(this.#db, deviceId);
    return row && { userId: row.userId, expiresAtMs: row.expiresAt === null ? 0 : new Date(row.expiresAt).getTime() };
  }

  /**
   * Resolves once the baseline of the device's current lease is recorded (at once when it is, or when the device is
   * not leased): device operations wait for it, so that nothing a holder does gets into the baseline their reset
   * restores. In a cluster the lease may have been granted by another node, which reads the baseline: a lease
   * granted in the last `BASELINE_WAIT_MS` without one is waited for until that node says it is done (or the time
   * is up). Never rejects.
   */
  async baselineTaken(deviceId: string): Promise<void> {
    const holder = this.#holders.get(deviceId);
    const snapshot = holder === undefined ? undefined : this.#snapshots.get(`${holder.leaseId}:${deviceId}`);
    if (snapshot !== undefined) return snapshot;
    if (this.#cluster?.shared !== true) return;
    try {
      const since = () => new Date(this.#clock().getTime() - BASELINE_WAIT_MS).toISOString();
      const leaseId = await leaseAwaitingBaseline(this.#db, deviceId, since());
      if (leaseId === undefined) return;
      const wait = this.#baselines.wait(`${leaseId}:${deviceId}`, BASELINE_WAIT_MS);
      try {
        // Asked again once listening: the other node may have finished in between.
        if ((await leaseAwaitingBaseline(this.#db, deviceId, since())) === leaseId) await wait.done;
      } finally {
        wait.cancel();
      }
    } catch (error) {
      this.#log.warn({ err: error, deviceId }, 'could not tell whether the baseline of a leased device is recorded');
    }
  }

  async create(principal: Principal, input: NewLease, requestId: string | null): Promise<CreatedLease> {
    const selector = normaliseSelector(input.selector ?? {});
    const count = input.count ?? DEFAULT_COUNT;
    const ttlSeconds = input.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    const waitSeconds = input.waitSeconds ?? 0;
    const errors: FieldError[] = [];
    intInRange('count', count, 1, 100, errors);
    intInRange('ttlSeconds', ttlSeconds, 30, 86_400, errors);
    intInRange('waitSeconds', waitSeconds, 0, 3600, errors);
    if (errors.length > 0) throw new ApiError('validation_failed', 'The lease request is invalid.', { errors });

    const cause: Cause = { actor: principalActor(principal), requestId };
    const effects = newEffects();
    const project = input.project ?? null;
    const request: BillingRequest = { userId: principal.userId, project, count, ttlSeconds };
    const outcome = await this.#underSchedulingLock(async (trx) => {
      // Read after the lock: leases are queued in the order of their ids.
      const now = this.#clock();
      const queued = await queuedLeases(trx);
      const admission = await this.#billing?.admission(trx, [...queued.map(billingOwner), request], now);
      // A request that would wait is checked in full now; one that cannot wait, only when devices are there for it.
      if (waitSeconds > 0) await admission?.prepare();
      const refusal = admission?.check(request);
      if (refusal !== undefined && (!refusal.waitable || waitSeconds === 0)) return { kind: 'refused', refusal } as const;
      const devices = await schedulableDevices(trx);
      const matching = devices.filter((device) => matchesSelector(selector, device));
      if (matching.length < count) {
        throw new ApiError(
          'selector_unsatisfiable',
          `${count} device${count === 1 ? '' : 's'} requested, but only ${matching.length} known device${matching.length === 1 ? ' matches' : 's match'} the selector.`,
        );
      }
      const row: LeaseRow = {
        id: `lse_${ulid(now.getTime())}`,
        user_id: principal.userId,
        status: 'queued',
        selector: JSON.stringify(selector),
        count,
        ttl_seconds: ttlSeconds,
        note: input.note ?? null,
        created_at: now.toISOString(),
        wait_until: waitSeconds > 0 ? iso(now.getTime() + waitSeconds * 1000) : null,
        granted_at: null,
        renewed_at: null,
        expires_at: null,
        ended_at: null,
        end_reason: null,
        ended_by: null,
        project,
        expiry_warned_for: null,
      };
      // The lease is scheduled as the last in the queue, and stored only once it is granted or queued.
      const causeOf = (id: string) => (id === row.id ? cause : systemCause);
      const { grants, refusals } = await this.#runScheduler(trx, now, effects, causeOf, {
        devices,
        candidate: row,
        queued,
        admission,
      });
      // The answer is read in the transaction: a lease the client is told of is one that was committed, and one
      // committed is one the client is told of.
      if (grants.some((grant) => grant.leaseId === row.id)) {
        return { kind: 'granted', lease: await this.#view(trx, row.id) } as const;
      }
      const refused = refusals.get(row.id);
      // Waiting does not help a lease its budgets cannot pay for the devices it would get.
      if (refused !== undefined && (waitSeconds === 0 || !refused.waitable)) return { kind: 'refused', refusal: refused } as const;
      if (waitSeconds === 0) {
        const free = matching.filter((device) => device.available).length;
        return { kind: 'unavailable', id: row.id, matching: matching.length, free } as const;
      }
      await insertLease(trx, row);
      const position = await queuePositionOf(trx, row.id);
      await record(trx, 'lease.queued', cause, { type: 'lease', id: row.id }, { lease: toLeaseSummary(row), position }, now);
      return { kind: 'queued', lease: await this.#view(trx, row.id) } as const;
    });
    this.#afterCommit(effects);
    if (outcome.kind === 'refused') {
      const { error } = outcome.refusal;
      if (error.code === 'quota_exceeded') await this.#billing?.refused(principal.userId, error, cause);
      throw error;
    }
    if (outcome.kind === 'unavailable') {
      const { matching, free } = outcome;
      const reserved = free >= count ? '; the free ones are reserved by leases queued before this one' : '';
      throw new ApiError(
        'no_devices_available',
        `${count} device${count === 1 ? '' : 's'} requested: ${matching} match the selector, ${free} ${free === 1 ? 'is' : 'are'} available${reserved}. Pass waitSeconds to queue.`,
      );
    }
    return { status: outcome.kind === 'granted' ? 201 : 202, lease: outcome.lease };
  }

  /** A lease; with `waitSeconds`, while it is queued, waits up to that long for it to change. */
  async get(principal: Principal, id: string, options: { waitSeconds?: number | undefined } = {}): Promise<Lease> {
    const waitMs = Math.max(0, Math.min(options.waitSeconds ?? 0, 60)) * 1000;
    if (waitMs === 0 || this.#closed) return this.#visibleView(principal, id);
    // Listen before reading, so that a change committed in between is not missed.
    const waiter = this.#waiters.wait(id, waitMs);
    try {
      const lease = await this.#visibleView(principal, id);
      if (lease.status !== 'queued') return lease;
      await waiter.done;
    } finally {
      waiter.cancel();
    }
    return this.#visibleView(principal, id);
  }

  async list(principal: Principal, query: LeaseListQuery): Promise<Page<Lease>> {
    const owner = query.userId ?? (query.allUsers === true ? undefined : principal.userId);
    if (owner !== principal.userId && principal.role !== 'admin') {
      throw new ApiError('insufficient_role', "Listing other users' leases needs the admin role.");
    }
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, leasePosition);
    const statuses = query.status !== undefined && query.status.length > 0 ? query.status : ACTIVE_STATUSES;
    const rows = await queryLeases(this.#db, {
      userId: owner,
      statuses,
      afterId: after?.id,
      limit: query.limit + 1,
    });
    const shown = rows.slice(0, query.limit);
    const devices = await findLeaseDevices(
      this.#db,
      shown.map((row) => row.id),
    );
    const positions = new Map<string, number>();
    if (shown.some((row) => row.status === 'queued')) {
      (await queuedLeaseIds(this.#db)).forEach((leaseId, index) => positions.set(leaseId, index + 1));
    }
    return toPage(
      rows,
      query.limit,
      (row) =>
        toLease(
          row,
          devices.filter((device) => device.leaseId === row.id),
          positions.get(row.id) ?? null,
        ),
      (row) => ({ id: row.id }),
    );
  }

  /** Extends a granted lease to now + ttlSeconds (default: its own ttl). */
  async renew(
    principal: Principal,
    id: string,
    input: { ttlSeconds?: number | undefined },
    requestId: string | null,
  ): Promise<Lease> {
    const now = this.#clock();
    const cause: Cause = { actor: principalActor(principal), requestId };
    let expiresAtMs = 0;
    await this.#db.transaction().execute(async (trx) => {
      const row = visible(principal, id, await findLease(trx, id));
      const ttlSeconds = input.ttlSeconds ?? row.ttl_seconds;
      const errors: FieldError[] = [];
      intInRange('ttlSeconds', ttlSeconds, 30, 86_400, errors);
      if (errors.length > 0) throw new ApiError('validation_failed', 'The renewal is invalid.', { errors });
      if (row.status !== 'granted' || row.expires_at === null || row.expires_at <= now.toISOString()) {
        throw new ApiError('lease_not_active', `Lease ${id} is ${row.status === 'granted' ? 'expired' : row.status}; only a granted lease can be renewed.`);
      }
      const request: BillingRequest = { userId: row.user_id, project: row.project, count: 0, ttlSeconds };
      if (this.#billing !== undefined) {
        // The budgets paying for the lease must afford another minute of its devices.
        const leased = new Set((await findLeaseDevices(trx, [id])).filter((device) => device.releasedAt === null).map((device) => device.deviceId));
        const devices = (await schedulableDevices(trx)).filter((device) => leased.has(device.id));
        const admission = await this.#billing.admission(trx, [request], now);
        await admission.prepare();
        const refusal = admission.check(request, devices);
        if (refusal !== undefined) throw refusal.error;
      }
      expiresAtMs = now.getTime() + ttlSeconds * 1000;
      await renewLeaseRow(trx, id, now.toISOString(), iso(expiresAtMs));
      const lease = toLeaseSummary({ ...row, expires_at: iso(expiresAtMs) });
      await record(trx, 'lease.renewed', cause, { type: 'lease', id }, { lease }, now);
    }).catch(async (error: unknown) => {
      if (error instanceof ApiError && error.code === 'quota_exceeded') {
        await this.#billing?.refused(principal.userId, error, cause);
      }
      throw error;
    });
    for (const deviceId of this.#leaseDevices.get(id) ?? []) {
      const holder = this.#holders.get(deviceId);
      if (holder?.leaseId === id) holder.expiresAtMs = expiresAtMs;
    }
    return this.#view(this.#db, id);
  }

  /**
   * Ends a lease: a granted one is released (force_released when an admin ends someone else's), a queued one is
   * cancelled; an ended one is returned unchanged.
   */
  async release(principal: Principal, id: string, requestId: string | null): Promise<Lease> {
    const cause: Cause = { actor: principalActor(principal), requestId };
    const effects = newEffects();
    const lease = await this.#underSchedulingLock(async (trx) => {
      // Read after the lock: a device's release is never recorded before its grant.
      const now = this.#clock();
      const row = visible(principal, id, await findLease(trx, id));
      if (row.status === 'queued') {
        await this.#endLease(trx, row, 'cancelled', 'cancelled', null, cause, now, effects, true);
      } else if (row.status === 'granted') {
        const own = row.user_id === principal.userId;
        const reason = own ? 'released' : 'force_released';
        await this.#endLease(trx, row, 'released', reason, own ? null : principal.userId, cause, now, effects, true);
      }
      return this.#view(trx, id);
    });
    this.#afterCommit(effects);
    return lease;
  }

  /**
   * Expires granted leases whose time is up and times out queued leases whose wait is over, then schedules.
   * Runs every `sweepIntervalMs`; public so that tests with a manual clock can drive it.
   */
  async sweep(): Promise<void> {
    const effects = newEffects();
    await this.#underSchedulingLock(async (trx) => {
      const now = this.#clock();
      const overdue = await overdueLeases(trx, now.toISOString());
      for (const row of overdue) {
        if (row.status === 'granted') {
          await this.#endLease(trx, row, 'expired', 'expired', null, systemCause, now, effects, true);
        } else {
          await this.#endLease(trx, row, 'timed_out', 'timed_out', null, systemCause, now, effects, true);
        }
      }
    });
    this.#afterCommit(effects);
    await this.schedule();
  }

  /**
   * Appends `lease.expiring` for each granted lease expiring within `withinMinutes`, once per expiry time: a renewal
   * moves the expiry and so re-arms the warning. A lease granted or renewed for no longer than the warning is not
   * warned: its holder just chose when it ends. Each lease is warned in a transaction of its own. Returns how many.
   */
  async warnExpiring(withinMinutes: number): Promise<number> {
    const now = this.#clock();
    const withinMs = withinMinutes * 60_000;
    const until = iso(now.getTime() + withinMs);
    let warned = 0;
    for (const row of await leasesToWarn(this.#db, now.toISOString(), until)) {
      const expiresAt = row.expires_at!;
      const termStart = row.renewed_at ?? row.granted_at;
      if (termStart !== null && Date.parse(expiresAt) - withinMs <= Date.parse(termStart)) continue;
      const done = await this.#db.transaction().execute(async (trx) => {
        if (!(await markExpiryWarned(trx, row.id, expiresAt))) return false;
        const minutesLeft = Math.ceil((new Date(expiresAt).getTime() - now.getTime()) / 60_000);
        const lease = toLeaseSummary(row);
        await record(trx, 'lease.expiring', systemCause, { type: 'lease', id: row.id }, { lease, minutesLeft }, now);
        return true;
      });
      if (done) warned += 1;
    }
    return warned;
  }

  /** Grants what can be granted now. Concurrent calls coalesce into one more run. */
  schedule(): Promise<void> {
    if (this.#scheduling !== null) {
      this.#scheduleAgain = true;
      return this.#scheduling;
    }
    const run = (async () => {
      do {
        this.#scheduleAgain = false;
        try {
          const effects = newEffects();
          await this.#underSchedulingLock(async (trx) => {
            await this.#runScheduler(trx, this.#clock(), effects, () => systemCause);
          });
          this.#afterCommit(effects);
        } catch (error) {
          this.#log.error({ err: error }, 'lease scheduling failed');
        }
      } while (this.#scheduleAgain && !this.#closed);
    })().finally(() => {
      this.#scheduling = null;
    });
    this.#scheduling = run;
    this.#track(run);
    return run;
  }

  /**
   * Ends (host_removed) the active leases holding devices of the host, inside the caller's transaction, with their
   * events. The devices are not reset (they leave the inventory). Call `afterCommit()` once committed.
   */
  async endLeasesForHost(trx: Kysely<DB>, hostId: string, cause: Cause): Promise<EndedLeases> {
    await lockForTransaction(trx, SCHEDULING_LOCK);
    const now = this.#clock();
    const effects = newEffects();
    for (const row of await leasesOnHost(trx, hostId)) {
      await this.#endLease(trx, row, 'released', 'host_removed', null, cause, now, effects, false);
    }
    const deviceIds = effects.ended.flatMap((ended) => ended.devices.map((device) => device.deviceId));
    // Taking access away early is the safe direction if the caller's transaction rolls back.
    for (const ended of effects.ended) this.#forget(ended.leaseId);
    return {
      leaseIds: effects.ended.map((ended) => ended.leaseId),
      deviceIds,
      afterCommit: this.#afterCommitOnce(effects),
    };
  }

  /**
   * Ends (user_disabled) a user's leases inside the caller's transaction, with their events: granted ones are
   * released and their devices reset, queued ones cancelled. Call `afterCommit()` once committed.
   */
  async endLeasesOfUser(trx: Kysely<DB>, userId: string, cause: Cause): Promise<{ afterCommit(): void }> {
    await lockForTransaction(trx, SCHEDULING_LOCK);
    const now = this.#clock();
    const effects = newEffects();
    const endedBy = cause.actor.type === 'user' ? cause.actor.id : null;
    for (const row of await activeLeasesOfUser(trx, userId)) {
      const status = row.status === 'granted' ? 'released' : 'cancelled';
      await this.#endLease(trx, row, status, 'user_disabled', endedBy, cause, now, effects, true);
    }
    return { afterCommit: this.#afterCommitOnce(effects) };
  }

  /**
   * Ends the given leases that are still active, for billing (`budget_exhausted`, `quota_exhausted`): granted ones
   * are released and their devices reset, queued ones cancelled. `alongside` runs in the same transaction (the
   * event that says why). Returns the ids of the leases it ended.
   */
  async endForBilling(
    leaseIds: readonly string[],
    reason: 'budget_exhausted' | 'quota_exhausted',
    alongside?: (trx: Kysely<DB>, ended: string[]) => Promise<void>,
  ): Promise<string[]> {
    const effects = newEffects();
    const ended = await this.#underSchedulingLock(async (trx) => {
      const now = this.#clock();
      const rows = await activeLeases(trx, leaseIds);
      for (const row of rows) {
        const status = row.status === 'granted' ? 'released' : 'cancelled';
        await this.#endLease(trx, row, status, reason, null, systemCause, now, effects, true);
      }
      const ids = rows.map((row) => row.id);
      await alongside?.(trx, ids);
      return ids;
    });
    this.#afterCommit(effects);
    return ended;
  }

  // ---------------------------------------------------------------------------------------------------------------

  /**
   * Grants what the queue (and `candidate`, a new lease not stored yet, as its last entry) can be granted now, within
   * each user's quotas and budgets. Returns the grants, and why billing held back the leases it did not admit.
   */
  async #runScheduler(
    trx: Kysely<DB>,
    now: Date,
    effects: Effects,
    causeOf: (leaseId: string) => Cause,
    known: {
      devices?: SchedulableDevice[];
      candidate?: LeaseRow | undefined;
      queued?: LeaseRow[];
      admission?: LeaseAdmission | undefined;
    } = {},
  ): Promise<{ grants: Grant[]; refusals: Map<string, BillingRefusal> }> {
    const { candidate } = known;
    const queued = known.queued ?? (await queuedLeases(trx));
    const refusals = new Map<string, BillingRefusal>();
    const considered = candidate === undefined ? queued : [...queued, candidate];
    if (considered.length === 0) return { grants: [], refusals };
    const devices = known.devices ?? (await schedulableDevices(trx));
    const requests = considered.map((row) => ({
      id: row.id,
      count: row.count,
      selector: JSON.parse(row.selector) as DeviceSelector,
    }));
    // Billing only ever holds grants back: when nothing can be granted, it need not be asked.
    if (this.#billing !== undefined && schedule(requests, devices).length === 0) return { grants: [], refusals };
    const admission = known.admission ?? (await this.#billing?.admission(trx, considered.map(billingOwner), now));
    await admission?.prepare();
    const byId = new Map(considered.map((row) => [row.id, row]));
    const admit =
      admission &&
      ((lease: QueuedLease, chosen: readonly SchedulableDevice[]) => {
        const request = billingRequest(byId.get(lease.id)!);
        const refusal = admission.check(request, chosen);
        if (refusal !== undefined) {
          refusals.set(lease.id, refusal);
          return false;
        }
        admission.granted(request, chosen);
        return true;
      });
    const grants = schedule(requests, devices, admit);
    const deviceById = new Map(devices.map((device) => [device.id, device]));
    const at = now.toISOString();
    for (const grant of grants) {
      const row = byId.get(grant.leaseId)!;
      const expiresAtMs = now.getTime() + row.ttl_seconds * 1000;
      if (row === candidate) await insertLease(trx, row);
      const granted = grant.deviceIds.map((id) => {
        const device = deviceById.get(id);
        return { id, billingClass: device === undefined ? null : (this.#billing?.classOf(device) ?? null) };
      });
      await insertLeaseDevices(trx, grant.leaseId, granted, at);
      await markGranted(trx, grant.leaseId, at, iso(expiresAtMs));
      const lease = toLeaseSummary({ ...row, status: 'granted', granted_at: at, expires_at: iso(expiresAtMs) });
      await record(
        trx,
        'lease.granted',
        causeOf(grant.leaseId),
        { type: 'lease', id: grant.leaseId },
        { lease, deviceIds: grant.deviceIds, queued: row !== candidate },
        now,
      );
      effects.granted.push({ leaseId: grant.leaseId, userId: row.user_id, expiresAtMs, deviceIds: grant.deviceIds });
      effects.changed.add(grant.leaseId);
    }
    return { grants, refusals };
  }

  async #endLease(
    trx: Kysely<DB>,
    row: LeaseRow,
    status: LeaseStatus,
    reason: LeaseEndReason,
    endedBy: string | null,
    cause: Cause,
    now: Date,
    effects: Effects,
    reset: boolean,
  ): Promise<void> {
    const at = now.toISOString();
    if (!(await endLeaseRow(trx, row.id, { status, endReason: reason, endedAt: at, endedBy }))) return;
    const wasGranted = row.status === 'granted';
    const devices = wasGranted ? await releaseLeaseDevices(trx, row.id, at) : [];
    if (this.#billing !== undefined && devices.length > 0) {
      const metered = devices.map((device) => ({
        deviceId: device.deviceId,
        billingClass:
          device.billingClass ??
          this.#billing!.classOf({ kind: device.kind, labels: JSON.parse(device.labels) } as SchedulableDevice),
        meteredFrom: device.meteredFrom,
      }));
      await this.#billing.meter(trx, row, metered, now);
    }
    if (reset) {
      await setDevicesResetting(
        trx,
        devices.map((device) => device.deviceId),
        at,
        this.#cluster?.shared === true ? this.#cluster.node : null,
      );
    }
    const lease = toLeaseSummary({ ...row, status });
    const subject = { type: 'lease' as const, id: row.id };
    if (reason === 'expired') await record(trx, 'lease.expired', cause, subject, { lease }, now);
    else await record(trx, 'lease.released', cause, subject, { lease, reason }, now);
    effects.changed.add(row.id);
    if (wasGranted) effects.ended.push({ leaseId: row.id, userId: row.user_id, devices, reset });
    // A queued lease reserves the devices it matches: ending it may let others through.
    else effects.reschedule = true;
  }

  /**
   * Runs `work` in a transaction that first takes the scheduling lock, so that one lease decision at a time sees the
   * queue and the free devices, whatever node runs it. This process's turns are taken before a connection is: at
   * most one pooled connection per node waits on the lock, and the others stay free for the rest of the API.
   */
  #underSchedulingLock<T>(work: (trx: Kysely<DB>) => Promise<T>): Promise<T> {
    const run = this.#schedulingTurn.then(() =>
      this.#db.transaction().execute(async (trx) => {
        await lockForTransaction(trx, SCHEDULING_LOCK);
        return work(trx);
      }),
    );
    this.#schedulingTurn = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** `#afterCommit(effects)` for a caller that commits its own transaction: it runs once however often it is called. */
  #afterCommitOnce(effects: Effects): () => void {
    let applied = false;
    return () => {
      if (applied) return;
      applied = true;
      this.#afterCommit(effects);
    };
  }

  #afterCommit(effects: Effects): void {
    for (const grant of effects.granted) {
      this.#leaseDevices.set(grant.leaseId, grant.deviceIds);
      for (const deviceId of grant.deviceIds) {
        this.#holders.set(deviceId, { leaseId: grant.leaseId, userId: grant.userId, expiresAtMs: grant.expiresAtMs });
        this.#snapshotBaseline(grant.leaseId, deviceId);
      }
    }
    for (const ended of effects.ended) {
      this.#forget(ended.leaseId);
      for (const device of ended.devices) this.#holders.delete(device.deviceId);
    }
    for (const leaseId of effects.changed) {
      this.#waiters.wake(leaseId);
    }
    for (const ended of effects.ended) {
      const deviceIds = ended.devices.map((device) => device.deviceId);
      const pending: Promise<unknown>[] = [];
      for (const listener of this.#endedListeners) {
        try {
          const result = listener({ leaseId: ended.leaseId, userId: ended.userId, deviceIds });
          if (result !== undefined) pending.push(result);
        } catch (error) {
          this.#log.error({ err: error, leaseId: ended.leaseId }, 'lease-ended listener failed');
        }
      }
      if (ended.reset) {
        const quiet = Promise.allSettled(pending);
        for (const device of ended.devices) this.#resetDevice(ended.leaseId, device, quiet);
      }
    }
    if (effects.reschedule) this.#kick();
  }

  #forget(leaseId: string): void {
    for (const deviceId of this.#leaseDevices.get(leaseId) ?? []) {
      if (this.#holders.get(deviceId)?.leaseId === leaseId) this.#holders.delete(deviceId);
    }
    this.#leaseDevices.delete(leaseId);
  }

  /**
   * Records the state (packages, shared storage) a granted device had, to restore at its reset. A device whose last
   * reset (on the same connection) succeeded was checked to be back in that state, so its clean state is reused
   * rather than read from the device again: a grant then costs no device round trip.
   */
  #snapshotBaseline(leaseId: string, deviceId: string): void {
    const key = `${leaseId}:${deviceId}`;
    const task = (async () => {
      try {
        const connection = this.#devices.connectionOf(deviceId);
        const clean = this.#cleanStates.get(deviceId);
        let baseline: DeviceBaseline;
        if (clean !== undefined && connection !== undefined && clean.connection === connection) {
          baseline = clean.baseline;
        } else {
          baseline = await this.#devices.snapshot(deviceId);
          if (connection !== undefined) this.#cleanStates.set(deviceId, { connection, baseline });
        }
        await setBaseline(this.#db, leaseId, deviceId, baseline);
      } catch (error) {
        this.#log.warn(
          { err: error, leaseId, deviceId },
          'could not snapshot the state of a leased device; its reset will take the state at its end as the baseline',
        );
      }
    })().finally(() => {
      this.#snapshots.delete(key);
      this.#baselines.wake(key);
    });
    this.#snapshots.set(key, task);
    this.#track(task);
  }

  /** Resets a device of an ended lease once `quiet` (the lease-ended listeners' work) has settled. */
  #resetDevice(leaseId: string, device: EndedLease['devices'][number], quiet: Promise<unknown>): void {
    const { deviceId } = device;
    const task = (async () => {
      await quiet;
      await this.#snapshots.get(`${leaseId}:${deviceId}`);
      const reset = await this.#runReset(leaseId, device);
      // Only a device reset completely is back in its recorded clean state.
      if (reset.status !== 'succeeded') this.#cleanStates.delete(deviceId);
      try {
        await this.#db.transaction().execute(async (trx) => {
          await setReset(trx, leaseId, deviceId, reset);
          await record(trx, 'device.reset', systemCause, { type: 'device', id: deviceId }, { deviceId, leaseId, reset }, this.#clock());
        });
      } catch (error) {
        this.#log.error({ err: error, leaseId, deviceId }, 'could not record a device reset');
      }
      try {
        await this.#devices.setResetting(deviceId, false);
      } catch (error) {
        this.#log.error({ err: error, deviceId }, 'could not clear the resetting flag; clearing it in the database');
        await this.#db
          .updateTable('devices')
          .set({ resetting: 0 })
          .where('id', '=', deviceId)
          .execute()
          .catch(() => undefined);
      }
      this.#kick();
    })();
    this.#track(task);
  }

  async #runReset(leaseId: string, device: EndedLease['devices'][number]): Promise<DeviceReset> {
    const finished = (result: Omit<DeviceReset, 'finishedAt'>): DeviceReset => ({
      ...result,
      finishedAt: this.#clock().toISOString(),
    });
    if (device.state !== 'online') {
      return finished({
        status: 'skipped',
        uninstalled: [],
        clearedTmp: false,
        removed: [],
        differences: [],
        error: `The device was ${device.state} when the lease ended.`,
      });
    }
    try {
      const stored = device.baseline ?? (await findBaseline(this.#db, leaseId, device.deviceId));
      // Without a baseline nothing but /data/local/tmp is cleared: the state there now becomes the baseline.
      const baseline = stored === null ? await this.#devices.snapshot(device.deviceId) : parseBaseline(stored);
      const result = await this.#devices.reset(device.deviceId, baseline);
      const clean = result.error === null && result.differences.length === 0;
      const error =
        result.error ??
        (result.differences.length === 0
          ? null
          : `The device differs from its baseline in ${result.differences.length} way${result.differences.length === 1 ? '' : 's'} the reset could not undo.`);
      return finished({ ...result, error, status: clean ? 'succeeded' : 'failed' });
    } catch (error) {
      const offline = error instanceof Error && error.name === 'DeviceOfflineError';
      return finished({
        status: offline ? 'skipped' : 'failed',
        uninstalled: [],
        clearedTmp: false,
        removed: [],
        differences: [],
        error: offline ? `The device went offline: ${errorMessage(error)}` : errorMessage(error),
      });
    }
  }

  #kick(): void {
    if (this.#closed) return;
    void this.schedule();
  }

  #tick(): void {
    if (this.#sweeping || this.#closed || this.#cluster?.isLeader() === false) return;
    this.#sweeping = true;
    const task = this.sweep()
      .catch((error: unknown) => this.#log.error({ err: error }, 'lease sweep failed'))
      .finally(() => {
        this.#sweeping = false;
      });
    this.#track(task);
  }

  #track(task: Promise<unknown>): void {
    this.#inFlight.add(task);
    void task.then(
      () => this.#inFlight.delete(task),
      () => this.#inFlight.delete(task),
    );
  }

  async #rebuildIndex(): Promise<void> {
    this.#holders.clear();
    this.#leaseDevices.clear();
    for (const held of await heldDevices(this.#db)) {
      const expiresAtMs = held.expiresAt === null ? 0 : new Date(held.expiresAt).getTime();
      this.#holders.set(held.deviceId, { leaseId: held.leaseId, userId: held.userId, expiresAtMs });
      const devices = this.#leaseDevices.get(held.leaseId) ?? [];
      devices.push(held.deviceId);
      this.#leaseDevices.set(held.leaseId, devices);
    }
  }

  async #visibleView(principal: Principal, id: string): Promise<Lease> {
    const row = visible(principal, id, await findLease(this.#db, id));
    return this.#toView(this.#db, row);
  }

  async #view(db: Kysely<DB>, id: string): Promise<Lease> {
    const row = await findLease(db, id);
    if (row === undefined) throw new ApiError('lease_not_found', `No lease ${id}.`);
    return this.#toView(db, row);
  }

  async #toView(db: Kysely<DB>, row: NonNullable<Awaited<ReturnType<typeof findLease>>>): Promise<Lease> {
    const devices = await findLeaseDevices(db, [row.id]);
    const position = row.status === 'queued' ? await queuePositionOf(db, row.id) : null;
    return toLease(row, devices, position);
  }
}

function billingOwner(row: LeaseRow): { userId: string; project: string | null } {
  return { userId: row.user_id, project: row.project };
}

function billingRequest(row: LeaseRow): BillingRequest {
  return { userId: row.user_id, project: row.project, count: row.count, ttlSeconds: row.ttl_seconds };
}

/** Others' leases are reported as not found, except to admins. */
function visible<T extends { user_id: string }>(principal: Principal, id: string, lease: T | undefined): T {
  if (lease === undefined || (lease.user_id !== principal.userId && principal.role !== 'admin')) {
    throw new ApiError('lease_not_found', `No lease ${id}.`);
  }
  return lease;
}
