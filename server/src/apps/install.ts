import type { Readable } from 'node:stream';
import type { Adb } from '@yume-chan/adb';
import { PackageManager } from '@yume-chan/android-bin';
import { ReadableStream } from '@yume-chan/stream-extra';
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely, Selectable } from 'kysely';
import { newId } from '../db/ids.js';
import type { DB, InstallJobDevicesTable, InstallJobsTable } from '../db/schema.js';
import { DeviceOfflineError, DeviceTimeoutError } from '../devices/adb/errors.js';
import { guard } from '../devices/adb/guard.js';
import { listPackages } from '../devices/adb/operations.js';
import { appendEvent } from '../events/log.js';
import { openapiDocument } from '../generated/openapi.js';
import type { components } from '../generated/types.js';
import { principalActor, type Cause, type EventData } from '../events/types.js';
import { ApiError, type FieldError } from '../http/errors.js';
import type { Principal } from '../http/handler.js';
import { decodeCursor, idPosition, toPage, type Page } from '../pagination.js';
import type { Cluster } from '../cluster/cluster.js';
import { Waiters } from '../waiters.js';
import type { ByteRange } from './blob-store.js';
import { SharedBlob } from './shared-blob.js';

// ---------------------------------------------------------------------------------------------------------------
// Seams: what the install service needs from the app store, the inventory and the leases.

/** An app resolved for an install: its blob and the metadata the compatibility checks need. */
export interface InstallableApp {
  app: { id: string };
  sha256: string;
  size: number;
  metadata: { packageName: string; minSdk: number | null; abis: string[] };
}

/** The app store, as the install service uses it (AppService over its BlobStore). */
export interface InstallSource {
  /** The app as the caller sees it: 404 `app_not_found` when it is not visible to them. */
  getForInstall(principal: Principal, appId: string): Promise<InstallableApp>;
  /** A read stream of the blob's inclusive byte `range`, read `chunkBytes` at a time; destroyed after use. */
  openBlob(sha256: string, options: { range: ByteRange; chunkBytes: number }): Readable | Promise<Readable>;
}

/** The device fields the pre-checks read (the inventory's `Device` view has them). */
export interface InstallTargetDevice {
  id: string;
  serial: string;
  connected: boolean;
  properties: { sdk: number; abis: string[] } | null;
}

export interface InstallInventory {
  /** 404 `device_not_found` when unknown. */
  get(deviceId: string): Promise<InstallTargetDevice>;
  /** The live connection: 404 `device_not_found`, 409 `device_offline`. */
  adbFor(deviceId: string): Adb;
}

export interface InstallLeases {
  /** 403 `lease_required` unless the caller holds a granted lease on the device (admins always may). */
  assertCanOperate(principal: Principal, deviceId: string): Promise<void>;
  /** Resolves once the baseline of the device's current lease is taken, so that an install is not part of it. */
  baselineTaken(deviceId: string): Promise<void>;
  /** The lease; 404 `lease_not_found` for others' leases unless admin. */
  get(principal: Principal, leaseId: string): Promise<{ id: string; status: string; devices: { id: string }[] }>;
}

// ---------------------------------------------------------------------------------------------------------------
// Views

type Schemas = components['schemas'];

export type InstallJob = Schemas['InstallJob'];
export type InstallJobDevice = Schemas['InstallJobDevice'];
export type InstallOptionsView = InstallJob['options'];
export type InstallRequest = Schemas['InstallRequest'];

type JobRow = Selectable<InstallJobsTable>;
type JobDeviceRow = Selectable<InstallJobDevicesTable>;

/** What `install_jobs.options` holds: the options, plus the package name (the app may be deleted later). */
interface StoredOptions extends InstallOptionsView {
  packageName: string;
}

export type InstallLog = Pick<FastifyBaseLogger, 'error' | 'warn'>;

export const DEFAULT_INSTALL_CONCURRENCY = 16;
/** How long one device's install may take. */
export const DEFAULT_INSTALL_TIMEOUT_MS = 10 * 60_000;
const MAX_WAIT_SECONDS = 60;
const MAX_DEVICES = 100;
const MAX_REASON_LENGTH = 1000;
const UNINSTALL_TIMEOUT_MS = 60_000;

export interface InstallJobListQuery {
  appId?: string | undefined;
  status?: InstallJob['status'] | undefined;
  userId?: string | undefined;
  cursor?: string | undefined;
  limit: number;
}

const jobPosition = idPosition(/^ijb_[0-9A-Z]{26}$/);

/** The contract's form of a package name, checked here too because the name reaches the device's shell. */
const PACKAGE_NAME_SCHEMA = (openapiDocument.components as { schemas: Record<string, { pattern: string; maxLength: number }> })
  .schemas.PackageNameValue!;
const PACKAGE_NAME = new RegExp(PACKAGE_NAME_SCHEMA.pattern, 'u');

type InstallEvent =
  | { type: 'app.install.started'; data: EventData<'app.install.started'> }
  | { type: 'app.install.succeeded'; data: EventData<'app.install.succeeded'> }
  | { type: 'app.install.failed'; data: EventData<'app.install.failed'> };

async function record(db: Kysely<DB>, jobId: string, cause: Cause, event: InstallEvent, at: Date): Promise<void> {
  await appendEvent(db, {
    ...event,
    actor: cause.actor,
    requestId: cause.requestId,
    subject: { type: 'install_job', id: jobId },
    occurredAt: at,
  });
}

/**
 * What the device said, without the noise: `Failure [INSTALL_FAILED_OLDER_SDK: …]` → `INSTALL_FAILED_OLDER_SDK: …`;
 * otherwise the last meaningful line. At most 1000 characters.
 */
export function deviceReason(output: string): string {
  const lines = output
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !/^Performing (Streamed|Push) Install$/i.test(line));
  const failure = lines.find((line) => line.startsWith('Failure'));
  let reason: string;
  if (failure !== undefined) {
    const bracketed = /^Failure\s*\[(.*)\]$/.exec(failure);
    reason = bracketed?.[1]?.trim() ?? failure.replace(/^Failure:?\s*/, '');
  } else {
    reason = lines.at(-1) ?? 'the install failed with no message';
  }
  if (reason === '') reason = 'the install failed with no message';
  return reason.length > MAX_REASON_LENGTH ? `${reason.slice(0, MAX_REASON_LENGTH - 1)}…` : reason;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function compatibilityProblem(app: InstallableApp, device: InstallTargetDevice): string | null {
  const { minSdk, abis } = app.metadata;
  const properties = device.properties;
  if (properties === null) return 'the device has not reported its SDK level and ABIs yet';
  if (minSdk !== null && minSdk > properties.sdk) {
    return `the app needs SDK ${minSdk} or later; the device has SDK ${properties.sdk}`;
  }
  if (abis.length > 0 && !abis.some((abi) => properties.abis.includes(abi))) {
    return `the app's native code is for ${abis.join(', ')}; the device supports ${properties.abis.join(', ') || 'none'}`;
  }
  return null;
}

interface RunningDevice {
  deviceId: string;
  serial: string;
}

/** An install running on one device, and the way to cut it short. */
interface RunningInstall {
  run: Promise<void>;
  abort: AbortController;
}

/**
 * `stream`, erroring as soon as `signal` aborts: the install's transfer stops there, and the pipe into the device
 * aborts, which closes the device's socket, so the device never gets the whole APK.
 */
function cutShortBy(stream: ReadableStream<Uint8Array>, signal: AbortSignal): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  return new ReadableStream<Uint8Array>({
    start(controller) {
      signal.addEventListener(
        'abort',
        () => {
          controller.error(signal.reason);
          reader.cancel(signal.reason).catch(() => undefined);
        },
        { once: true },
      );
    },
    async pull(controller) {
      const result = await reader.read();
      if (signal.aborted) return;
      if (result.done) controller.close();
      else controller.enqueue(result.value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
}

/** Rejects when `signal` aborts; never settles otherwise. */
function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise<never>((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

interface RunContext {
  jobId: string;
  /** Who started the job: each device's install starts only while they may still operate the device. */
  principal: Principal;
  app: InstallableApp;
  /** The APK's bytes, read once for all the job's devices. */
  blob: SharedBlob;
  options: InstallOptionsView;
  cause: Cause;
  devices: RunningDevice[];
}

/**
 * Installs apps on devices: an install job fans one APK out to several devices with bounded concurrency, streaming
 * the blob to each from one shared read (SharedBlob). Jobs run in the background of the request that created them; `get` long-polls.
 */
export class InstallService {
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;
  readonly #log: InstallLog;
  readonly #apps: InstallSource;
  readonly #inventory: InstallInventory;
  readonly #leases: InstallLeases;
  readonly #concurrency: number;
  readonly #timeoutMs: number;
  /** jobId → the job's background run. */
  readonly #running = new Map<string, Promise<void>>();
  /** Long polls waiting for a job (by id) to finish. */
  readonly #waiters: Waiters;
  readonly #cluster: Cluster | undefined;
  /** deviceId → the installs running on it, each with the way to cut it short. */
  readonly #onDevice = new Map<string, Set<RunningInstall>>();
  #closing = false;

  constructor(deps: {
    db: Kysely<DB>;
    clock: () => Date;
    log: InstallLog;
    apps: InstallSource;
    inventory: InstallInventory;
    leases: InstallLeases;
    concurrency?: number | undefined;
    installTimeoutMs?: number | undefined;
    /** The nodes sharing the database: a job's long polls may wait on any of them. */
    cluster?: Cluster | undefined;
  }) {
    this.#waiters = new Waiters(deps.cluster && { cluster: deps.cluster, name: 'installs' });
    this.#cluster = deps.cluster;
    this.#db = deps.db;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#apps = deps.apps;
    this.#inventory = deps.inventory;
    this.#leases = deps.leases;
    this.#concurrency = Math.max(1, Math.floor(deps.concurrency ?? DEFAULT_INSTALL_CONCURRENCY));
    this.#timeoutMs = deps.installTimeoutMs ?? DEFAULT_INSTALL_TIMEOUT_MS;
  }

  /**
   * Alone on the database: fails the jobs a previous process left unfinished (their background run died with it):
   * unfinished devices get `the server restarted during the install`, with their events. Call once at startup,
   * before serving. In a cluster the other nodes' jobs may be running: the leader's `recoverOrphans` fails those of
   * nodes that stopped.
   */
  async start(): Promise<void> {
    if (this.#cluster?.shared === true) return;
    await this.#failUnfinished(null, 'the server restarted during the install');
  }

  /** Fails the unfinished jobs run by nodes not in `live` (or by no recorded node). */
  async recoverOrphans(live: ReadonlySet<string>): Promise<void> {
    await this.#failUnfinished(live, 'the server node running the install stopped');
  }

  async #failUnfinished(live: ReadonlySet<string> | null, reason: string): Promise<void> {
    const unfinished = await this.#db
      .selectFrom('install_jobs')
      .selectAll()
      .where('status', 'in', ['pending', 'running'])
      .execute();
    const stale = live === null ? unfinished : unfinished.filter((job) => job.node === null || !live.has(job.node));
    for (const job of stale) {
      const cause: Cause = { actor: { type: 'system' }, requestId: null };
      const devices = await this.#db
        .selectFrom('install_job_devices')
        .select(['device_id'])
        .where('job_id', '=', job.id)
        .where('status', 'in', ['pending', 'installing'])
        .execute();
      for (const { device_id } of devices) {
        await this.#finishDevice(job.id, job.app_id, device_id, cause, reason);
      }
      await this.#finishJob(job.id);
    }
  }

  /** Stops starting installs (devices not started yet fail), waits for the running ones, releases long polls. */
  async close(): Promise<void> {
    this.#closing = true;
    while (this.#running.size > 0) await Promise.allSettled([...this.#running.values()]);
    this.#waiters.wakeAll();
  }

  /**
   * Cuts short the installs running on `deviceIds` (their lease ended: the transfer stops and the device fails with
   * `the lease on the device ended during the install`) and resolves once they have stopped. A lease's devices are
   * reset only after this, so the reset sees the device as the install left it; installs not yet started on them
   * will not start.
   */
  async abortOn(deviceIds: readonly string[]): Promise<void> {
    const installs = deviceIds.flatMap((id) => [...(this.#onDevice.get(id) ?? [])]);
    for (const install of installs) install.abort.abort();
    await Promise.allSettled(installs.map((install) => install.run));
  }

  /** Jobs whose background run is still going (for tests and shutdown). */
  runningJobs(): string[] {
    return [...this.#running.keys()];
  }

  /**
   * Checks everything before any transfer (all-or-nothing, nothing written on failure), records the job (pending)
   * with its devices and `app.install.started`, and starts it in the background.
   */
  async install(principal: Principal, appId: string, request: InstallRequest, requestId: string | null): Promise<InstallJob> {
    const hasIds = request.deviceIds !== undefined;
    const hasLease = request.leaseId !== undefined;
    if (hasIds === hasLease) {
      throw new ApiError('validation_failed', 'Give either deviceIds or leaseId, not both.', {
        errors: [{ field: '/deviceIds', message: 'exactly one of deviceIds and leaseId is required' }],
      });
    }
    if (this.#closing) throw new ApiError('service_unavailable', 'The server is shutting down.');
    let deviceIds: string[];
    if (request.deviceIds !== undefined) {
      deviceIds = [...new Set(request.deviceIds)];
      if (deviceIds.length < 1 || deviceIds.length > MAX_DEVICES) {
        throw new ApiError('validation_failed', `Give 1 to ${MAX_DEVICES} device ids.`, {
          errors: [{ field: '/deviceIds', message: `must hold 1 to ${MAX_DEVICES} device ids` }],
        });
      }
    } else {
      const lease = await this.#leases.get(principal, request.leaseId!);
      if (lease.status !== 'granted') {
        throw new ApiError('lease_not_active', `Lease ${lease.id} is ${lease.status}, not granted.`);
      }
      deviceIds = lease.devices.map((device) => device.id);
    }
    const options: InstallOptionsView = {
      replace: request.replace ?? true,
      downgrade: request.downgrade ?? false,
      grantPermissions: request.grantPermissions ?? false,
    };

    // Pre-checks, in order: the app (404), the devices (404), leases (403), connections (409), compatibility (422).
    const app = await this.#apps.getForInstall(principal, appId);
    const devices: InstallTargetDevice[] = [];
    for (const id of deviceIds) devices.push(await this.#inventory.get(id));
    for (const device of devices) await this.#leases.assertCanOperate(principal, device.id);
    const offline = devices.filter((device) => !this.#isConnected(device));
    if (offline.length > 0) {
      const ids = offline.map((device) => device.id);
      throw new ApiError(
        'device_offline',
        `${ids.length === 1 ? 'Device' : 'Devices'} ${ids.join(', ')} ${ids.length === 1 ? 'is' : 'are'} not connected.`,
        { errors: ids.map((id) => ({ field: id, message: 'the device is not connected' })) },
      );
    }
    const incompatible: FieldError[] = [];
    for (const device of devices) {
      const reason = compatibilityProblem(app, device);
      if (reason !== null) incompatible.push({ field: device.id, message: reason });
    }
    if (incompatible.length > 0) {
      throw new ApiError(
        'app_incompatible',
        `${app.metadata.packageName} cannot be installed on ${incompatible.length} of the ${devices.length} device${devices.length === 1 ? '' : 's'}.`,
        { errors: incompatible },
      );
    }

    const now = this.#clock();
    const at = now.toISOString();
    const jobId = newId('ijb', now.getTime());
    const cause: Cause = { actor: principalActor(principal), requestId };
    const stored: StoredOptions = { ...options, packageName: app.metadata.packageName };
    await this.#db.transaction().execute(async (trx) => {
      await trx
        .insertInto('install_jobs')
        .values({
          id: jobId,
          app_id: app.app.id,
          user_id: principal.userId,
          status: 'pending',
          options: JSON.stringify(stored),
          created_at: at,
          finished_at: null,
          node: this.#cluster?.node ?? null,
        })
        .execute();
      await trx
        .insertInto('install_job_devices')
        .values(
          devices.map((device, position) => ({
            job_id: jobId,
            position,
            device_id: device.id,
            serial: device.serial,
            status: 'pending' as const,
            reason: null,
            started_at: null,
            finished_at: null,
          })),
        )
        .execute();
      await record(
        trx,
        jobId,
        cause,
        { type: 'app.install.started', data: { jobId, appId: app.app.id, deviceIds: devices.map((d) => d.id) } },
        now,
      );
    });
    const view = await this.#view(jobId);
    const context: RunContext = {
      jobId,
      principal,
      app,
      blob: new SharedBlob((range, chunkBytes) => this.#apps.openBlob(app.sha256, { range, chunkBytes }), app.size),
      options,
      cause,
      devices: devices.map((device) => ({ deviceId: device.id, serial: device.serial })),
    };
    const run = this.#run(context)
      .catch((error: unknown) => this.#log.error({ err: error, jobId }, 'install job failed unexpectedly'))
      .finally(() => {
        this.#running.delete(jobId);
        this.#waiters.wake(jobId);
      });
    this.#running.set(jobId, run);
    return view;
  }

  /** A job; with `waitSeconds` (0..60), waits up to that long while it is pending or running. */
  async get(principal: Principal, jobId: string, options: { waitSeconds?: number | undefined } = {}): Promise<InstallJob> {
    const waitMs = Math.max(0, Math.min(options.waitSeconds ?? 0, MAX_WAIT_SECONDS)) * 1000;
    if (waitMs === 0 || this.#closing) return this.#visible(principal, jobId);
    // Listen before reading, so that a finish committed in between is not missed.
    const waiter = this.#waiters.wait(jobId, waitMs);
    try {
      const job = await this.#visible(principal, jobId);
      if (job.status === 'succeeded' || job.status === 'failed') return job;
      await waiter.done;
    } finally {
      waiter.cancel();
    }
    return this.#visible(principal, jobId);
  }

  /** The caller's jobs (an admin's: everyone's, or `userId`'s), oldest first, with their devices. */
  async list(principal: Principal, query: InstallJobListQuery): Promise<Page<InstallJob>> {
    let select = this.#db.selectFrom('install_jobs').selectAll();
    const userId = principal.role === 'admin' ? query.userId : principal.userId;
    if (userId !== undefined) select = select.where('user_id', '=', userId);
    if (query.appId !== undefined) select = select.where('app_id', '=', query.appId);
    if (query.status !== undefined) select = select.where('status', '=', query.status);
    if (query.cursor !== undefined) select = select.where('id', '>', decodeCursor(query.cursor, jobPosition).id);
    const jobs = await select.orderBy('id').limit(query.limit + 1).execute();
    const shown = jobs.slice(0, query.limit);
    const ids = shown.map((job) => job.id);
    const devices =
      ids.length === 0
        ? []
        : await this.#db
            .selectFrom('install_job_devices')
            .selectAll()
            .where('job_id', 'in', ids)
            .orderBy('position')
            .execute();
    return toPage(
      jobs,
      query.limit,
      (job) => toInstallJob(job, devices.filter((device) => device.job_id === job.id)),
      (job) => ({ id: job.id }),
    );
  }

  /**
   * Uninstalls a package from a device: 400 for a name not of the contract's form, 404 `device_not_found`, 403
   * `lease_required`, 409 `device_offline`, 404 `package_not_installed`, 502 `device_command_failed` for other refusals.
   */
  async uninstall(principal: Principal, deviceId: string, packageName: string): Promise<void> {
    if (packageName.length > PACKAGE_NAME_SCHEMA.maxLength || !PACKAGE_NAME.test(packageName)) {
      throw new ApiError('validation_failed', `${JSON.stringify(packageName)} is not a package name.`, {
        errors: [{ field: 'packageName', message: 'must be an Android package name such as com.example.app' }],
      });
    }
    await this.#inventory.get(deviceId);
    await this.#leases.assertCanOperate(principal, deviceId);
    await this.#leases.baselineTaken(deviceId);
    const adb = this.#inventory.adbFor(deviceId);
    try {
      try {
        await guard(adb, new PackageManager(adb).uninstall(packageName), {
          timeoutMs: UNINSTALL_TIMEOUT_MS,
          what: 'pm uninstall',
        });
        return;
      } catch (error) {
        if (error instanceof DeviceOfflineError || error instanceof DeviceTimeoutError) throw error;
        // Android says DELETE_FAILED_INTERNAL_ERROR (or "Unknown package") both for a missing package and for other
        // refusals: ask the package list which it was.
        const installed = await listPackages(adb, { thirdParty: false });
        if (!installed.some((pkg) => pkg.packageName === packageName)) {
          throw new ApiError('package_not_installed', `${packageName} is not installed on device ${deviceId}.`);
        }
        throw new ApiError('device_command_failed', `Device ${deviceId}: ${deviceReason(errorMessage(error))}`);
      }
    } catch (error) {
      if (error instanceof DeviceOfflineError) {
        throw new ApiError('device_offline', `Device ${deviceId} went offline: ${error.message}.`);
      }
      if (error instanceof DeviceTimeoutError) throw new ApiError('device_timeout', `${error.message}.`);
      throw error;
    }
  }

  // ---------------------------------------------------------------------------------------------------------------

  #isConnected(device: InstallTargetDevice): boolean {
    if (!device.connected) return false;
    try {
      this.#inventory.adbFor(device.id);
      return true;
    } catch {
      return false;
    }
  }

  async #run(context: RunContext): Promise<void> {
    const { jobId } = context;
    await this.#db
      .updateTable('install_jobs')
      .set({ status: 'running' })
      .where('id', '=', jobId)
      .where('status', '=', 'pending')
      .execute();
    const queue = [...context.devices];
    const worker = async (): Promise<void> => {
      for (let device = queue.shift(); device !== undefined; device = queue.shift()) {
        const refusal = this.#closing ? 'the server shut down before the install started' : await this.#leaseEnded(context, device);
        if (refusal !== null) {
          await this.#finishDevice(jobId, context.app.app.id, device.deviceId, context.cause, refusal);
          continue;
        }
        // Registered before anything else can run, so that a lease ending from now on cuts this install short.
        const abort = new AbortController();
        const install: RunningInstall = { run: this.#installOn(context, device, abort.signal), abort };
        const runs = this.#onDevice.get(device.deviceId) ?? new Set<RunningInstall>();
        this.#onDevice.set(device.deviceId, runs.add(install));
        try {
          await install.run;
        } finally {
          runs.delete(install);
          if (runs.size === 0 && this.#onDevice.get(device.deviceId) === runs) this.#onDevice.delete(device.deviceId);
        }
      }
    };
    const workers = Array.from({ length: Math.min(this.#concurrency, queue.length) }, () => worker());
    await Promise.all(workers);
    await this.#finishJob(jobId);
  }

  /** Why the device may no longer be installed on (its lease ended since the job started), or null. */
  async #leaseEnded(context: RunContext, device: RunningDevice): Promise<string | null> {
    try {
      await this.#leases.assertCanOperate(context.principal, device.deviceId);
      return null;
    } catch {
      return 'the lease on the device ended before the install started';
    }
  }

  async #installOn(context: RunContext, device: RunningDevice, signal: AbortSignal): Promise<void> {
    const { jobId, app, options, cause } = context;
    const { deviceId } = device;
    await this.#db
      .updateTable('install_job_devices')
      .set({ status: 'installing', started_at: this.#clock().toISOString() })
      .where('job_id', '=', jobId)
      .where('device_id', '=', deviceId)
      .execute();
    let reason: string | null = null;
    try {
      await this.#leases.baselineTaken(deviceId);
      let adb: Adb;
      try {
        adb = this.#inventory.adbFor(deviceId);
      } catch {
        throw new DeviceOfflineError();
      }
      signal.throwIfAborted();
      const installing = new PackageManager(adb).installStream(app.size, cutShortBy(context.blob.stream(), signal), {
        // Without skipExisting, android-bin passes -r (replace); with it, -R (fail if installed).
        skipExisting: !options.replace,
        requestDowngrade: options.downgrade,
        grantRuntimePermissions: options.grantPermissions,
      });
      // Once cut short, the install's own failure (the aborted pipe) comes later and is of no interest.
      installing.catch(() => undefined);
      await guard(adb, Promise.race([installing, rejectOnAbort(signal)]), { timeoutMs: this.#timeoutMs, what: 'the install' });
    } catch (error) {
      if (signal.aborted) reason = 'the lease on the device ended during the install';
      else if (error instanceof DeviceOfflineError) reason = 'device went offline';
      else if (error instanceof DeviceTimeoutError) reason = error.message;
      else reason = deviceReason(errorMessage(error));
    }
    await this.#finishDevice(jobId, app.app.id, deviceId, cause, reason);
  }

  /** Marks one device installed (`reason` null) or failed, with its event, in one transaction. */
  async #finishDevice(jobId: string, appId: string, deviceId: string, cause: Cause, reason: string | null): Promise<void> {
    const now = this.#clock();
    await this.#db.transaction().execute(async (trx) => {
      await trx
        .updateTable('install_job_devices')
        .set({ status: reason === null ? 'installed' : 'failed', reason, finished_at: now.toISOString() })
        .where('job_id', '=', jobId)
        .where('device_id', '=', deviceId)
        .execute();
      const event: InstallEvent =
        reason === null
          ? { type: 'app.install.succeeded', data: { jobId, appId, deviceId } }
          : { type: 'app.install.failed', data: { jobId, appId, deviceId, reason } };
      await record(trx, jobId, cause, event, now);
    });
  }

  async #finishJob(jobId: string): Promise<void> {
    const failed = await this.#db
      .selectFrom('install_job_devices')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('job_id', '=', jobId)
      .where('status', '!=', 'installed')
      .executeTakeFirstOrThrow();
    await this.#db
      .updateTable('install_jobs')
      .set({ status: Number(failed.n) === 0 ? 'succeeded' : 'failed', finished_at: this.#clock().toISOString() })
      .where('id', '=', jobId)
      .execute();
    this.#waiters.wake(jobId);
  }

  async #visible(principal: Principal, jobId: string): Promise<InstallJob> {
    const job = await this.#db.selectFrom('install_jobs').selectAll().where('id', '=', jobId).executeTakeFirst();
    if (job === undefined || (job.user_id !== principal.userId && principal.role !== 'admin')) {
      throw new ApiError('install_job_not_found', `No install job ${jobId}.`);
    }
    return this.#toView(job);
  }

  async #view(jobId: string): Promise<InstallJob> {
    const job = await this.#db.selectFrom('install_jobs').selectAll().where('id', '=', jobId).executeTakeFirstOrThrow();
    return this.#toView(job);
  }

  async #toView(job: JobRow): Promise<InstallJob> {
    const devices = await this.#db
      .selectFrom('install_job_devices')
      .selectAll()
      .where('job_id', '=', job.id)
      .orderBy('position')
      .execute();
    return toInstallJob(job, devices);
  }
}

export function toInstallJob(job: JobRow, devices: readonly JobDeviceRow[]): InstallJob {
  const stored = JSON.parse(job.options) as Partial<StoredOptions>;
  return {
    id: job.id,
    appId: job.app_id,
    packageName: stored.packageName ?? '',
    userId: job.user_id,
    status: job.status,
    options: {
      replace: stored.replace ?? true,
      downgrade: stored.downgrade ?? false,
      grantPermissions: stored.grantPermissions ?? false,
    },
    createdAt: job.created_at,
    finishedAt: job.finished_at,
    devices: devices.map((row) => ({
      deviceId: row.device_id,
      serial: row.serial,
      status: row.status,
      reason: row.reason,
      startedAt: row.started_at,
      finishedAt: row.finished_at,
    })),
  };
}
