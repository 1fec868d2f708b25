import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import { join } from 'node:path';
import { appHandlers } from './apps/handlers.js';
import { BlobStore } from './apps/blob-store.js';
import { InstallService } from './apps/install.js';
import { AppService } from './apps/service.js';
import { TokenAuthenticator } from './auth/authenticator.js';
import { authHandlers } from './auth/handlers.js';
import { BudgetService } from './billing/budgets.js';
import { BillingEnforcer } from './billing/enforcer.js';
import { billingHandlers } from './billing/handlers.js';
import { InvoiceService } from './billing/invoices.js';
import { PlanService } from './billing/plans.js';
import { UsageService } from './billing/usage.js';
import { AuthService } from './auth/service.js';
import { revokeUserSessions, sessionEnded } from './auth/sessions.js';
import { LoneNode, type Cluster } from './cluster/cluster.js';
import type { ServerConfig } from './config.js';
import type { DB } from './db/schema.js';
import { eventHandlers } from './events/handlers.js';
import { EventService } from './events/service.js';
import { loadOrCreateAdbKey } from './devices/adb/key.js';
import { resetDevice, snapshotDevice } from './devices/adb/reset.js';
import { deviceHandlers } from './devices/handlers.js';
import { HostService } from './devices/hosts.js';
import { hostHandlers } from './devices/hosts-handlers.js';
import { DeviceInventory } from './devices/inventory.js';
import { DeviceRegistry } from './devices/registry.js';
import { DeviceSessions, type WebSocketCredential } from './devices/sessions.js';
import { leaseHandlers } from './leases/handlers.js';
import { LeaseService } from './leases/service.js';
import type { Authenticator } from './http/auth.js';
import type { Handlers } from './http/handler.js';
import { meHandlers } from './me/handlers.js';
import { createNotifications } from './notifications/domain.js';
import { MeService } from './me/service.js';
import { apiTokenHandlers } from './tokens/handlers.js';
import { apiTokenEnded } from './tokens/repository.js';
import { ApiTokenService } from './tokens/service.js';
import type { Revocation, RevocationListener } from './revocations.js';
import { userHandlers } from './users/handlers.js';
import { UserService } from './users/service.js';

export interface DomainDeps {
  db: Kysely<DB>;
  clock: () => Date;
  config: ServerConfig;
  log: FastifyBaseLogger;
  /** The nodes sharing the database; a lone node by default. */
  cluster?: Cluster;
}

export interface Domains {
  /** Exactly one per operation of the contract. */
  handlers: Handlers;
  /** Resolves a bearer token to a principal, or throws an `ApiError` with a 401 code. */
  authenticator: Authenticator;
  /** Creates the first admin on an empty database; returns its one-time password, or null if users exist. */
  bootstrap(): Promise<{ username: string; password: string } | null>;
  /**
   * Starts following the device hosts, the lease timers and the event log; `url` is where the server listens (the
   * links in notifications start with it unless a public URL is configured).
   */
  start(url: string): Promise<void>;
  /**
   * The first step of shutdown, while HTTP drains: ends open device sessions, answers lease long polls and stops
   * the lease timers (waiting for resets in flight).
   */
  drain(): Promise<void>;
  /** The last step, once no request is in flight: disconnects every device. */
  close(): Promise<void>;
}

/**
 * How often the credentials of open WebSockets are checked in the database, for the changes no service of this
 * process announced (another node's, an API token's expiry).
 */
const CREDENTIAL_RECHECK_MS = 30_000;

/** How often the leader of a cluster looks for the work of nodes that stopped (install jobs, device resets). */
const ORPHAN_CHECK_MS = 5000;

/**
 * Wires the domains (users, auth, API tokens, me, events, devices, hosts, leases) over one database. The device
 * layer's ADB key is loaded (or created) in the data directory.
 */
export async function createDomains({
  db,
  clock,
  config,
  log,
  cluster = new LoneNode(config.nodeName),
}: DomainDeps): Promise<Domains> {
  // Device sessions and event streams end when the credential they were opened with does, on every node.
  const sessions = new DeviceSessions();
  const notifications = await createNotifications({ db, clock, config, log, cluster, leases: (): LeaseService => leases });
  const revocations: RevocationListener = {
    revoked(revocation) {
      sessions.revoked(revocation);
      notifications.streams.revoked(revocation);
      cluster.publish('revoked', { revocation });
    },
  };
  cluster.subscribe('revoked', ({ revocation }) => {
    sessions.revoked(revocation as Revocation);
    notifications.streams.revoked(revocation as Revocation);
  });
  const credentialEnded = (credential: WebSocketCredential) => {
    const now = clock().toISOString();
    if (credential.tokenId !== undefined) return apiTokenEnded(db, credential.tokenId, now);
    if (credential.sessionId !== undefined) return sessionEnded(db, credential.sessionId, now);
    return Promise.resolve(null);
  };
  let recheck: NodeJS.Timeout | undefined;
  const users = new UserService({
    db,
    clock,
    sessions: { revokeUserSessions },
    leases: { endLeasesOfUser: (trx, userId, cause) => leases.endLeasesOfUser(trx, userId, cause) },
    revocations,
  });
  const auth = new AuthService({ db, clock, config, revocations });
  const tokens = new ApiTokenService({ db, clock, revocations });
  const me = new MeService({ users });
  const events = new EventService(db);

  const timeZone = config.billingTimeZone;
  const plans = new PlanService({ db, clock, timeZone });
  const budgets = new BudgetService({ db, clock, timeZone });
  const usage = new UsageService({ db, clock, timeZone, budgets });
  const invoices = new InvoiceService({ db, clock, timeZone, log });
  // The leader checks budgets and quotas, and closes billing periods into draft invoices.
  const enforcer = new BillingEnforcer({
    db,
    clock,
    log,
    timeZone,
    intervalMs: config.billingCheckSeconds * 1000,
    cluster,
    leases: (): LeaseService => leases,
    periodic: (now) => invoices.closePeriods(now),
  });

  const adbKey = await loadOrCreateAdbKey(config.dataDir);
  const registry = new DeviceRegistry({
    adbKey,
    log: log.child({ component: 'devices' }),
    virtual: { count: config.virtualDevices, profile: config.virtualProfile },
  });
  // In a cluster every node connects to every host (device operations work on any node), and the leader records
  // what they report, except for in-process virtual devices, which their own node records.
  const inventory = new DeviceInventory({
    db,
    clock,
    live: registry,
    log,
    records: cluster.shared ? (hostId) => cluster.isLeader() || registry.isInProcess(hostId) : undefined,
  });
  const leases = new LeaseService({
    db,
    clock,
    log,
    devices: {
      snapshot: async (deviceId) => snapshotDevice(await inventory.liveAdb(deviceId)),
      reset: async (deviceId, baseline) => resetDevice(await inventory.liveAdb(deviceId), baseline),
      setResetting: (deviceId, on) => inventory.setResetting(deviceId, on),
      onAvailabilityChange: (listener) => inventory.onAvailabilityChange(listener),
      connectionOf: (deviceId) => inventory.connectionOf(deviceId),
    },
    cluster,
    billing: enforcer.leaseBilling(),
  });
  const hosts = new HostService({
    db,
    clock,
    live: registry,
    config,
    log,
    inventory,
    endLeasesForHost: (trx, hostId, cause) => leases.endLeasesForHost(trx, hostId, cause),
    cluster,
  });
  const apps = new AppService({
    db,
    clock,
    // Nodes of a cluster share the data directory's store (a shared volume), each uploading through its own folder.
    store: new BlobStore(join(config.dataDir, 'blobs'), cluster.shared ? cluster.node : undefined),
    log,
    maxAppBytes: config.maxAppBytes,
    ownsStore: !cluster.shared,
  });
  const installs = new InstallService({
    db,
    clock,
    log,
    apps,
    inventory,
    leases,
    concurrency: config.installConcurrency,
    cluster,
  });
  leases.onLeaseEnded(({ userId, deviceIds }) => sessions.leaseEnded(userId, deviceIds));
  // Installs still running on a lease's devices are cut short before the reset.
  leases.onLeaseEnded(({ deviceIds }) => installs.abortOn(deviceIds));
  // Other nodes' sessions and installs on those devices end too (the reset does not wait for them).
  leases.onLeaseEnded((ended) => cluster.publish('lease.ended', ended));
  cluster.subscribe('lease.ended', ({ userId, deviceIds }) => {
    sessions.leaseEnded(userId, deviceIds);
    void installs.abortOn(deviceIds);
  });
  cluster.subscribe('host.added', (host) => hosts.track(host));
  cluster.subscribe('host.removed', ({ id }) => void hosts.untrack(id));
  // The leader records the hosts, and in a cluster takes over the work of nodes that stopped: their install jobs
  // fail, their devices' resets run again here, their in-process virtual devices go offline.
  let orphanCheck: NodeJS.Timeout | undefined;
  let orphanRun: Promise<void> = Promise.resolve();
  const recoverOrphans = async () => {
    await orphanRun;
    try {
      const live = await cluster.liveNodes();
      await installs.recoverOrphans(live);
      await leases.recoverOrphanedResets(live);
      await inventory.markHostsOffline(await hosts.virtualHostsOfStoppedNodes(live));
    } catch (error) {
      log.error({ err: error }, 'could not take over the work of stopped nodes');
    }
  };
  cluster.onLeadership((leader) => {
    clearInterval(orphanCheck);
    if (!leader) return;
    void inventory.takeOver();
    if (!cluster.shared) return;
    orphanRun = recoverOrphans();
    orphanCheck = setInterval(() => (orphanRun = recoverOrphans()), ORPHAN_CHECK_MS);
    orphanCheck.unref();
  });

  return {
    handlers: {
      ...authHandlers(auth),
      ...meHandlers(me),
      ...userHandlers(users),
      ...apiTokenHandlers(tokens),
      ...eventHandlers(events),
      ...deviceHandlers({ inventory, leases, sessions, maxPushBytes: config.maxPushBytes }),
      ...leaseHandlers(leases),
      ...hostHandlers(hosts, adbKey),
      ...appHandlers(apps, installs),
      ...billingHandlers({ plans, budgets, usage, invoices, timeZone }),
      ...notifications.handlers,
    },
    authenticator: new TokenAuthenticator({ db, clock }),
    async bootstrap() {
      const created = await users.bootstrap(config.adminPassword);
      if (created !== null) log.info({ username: created.username }, 'created the first admin');
      return created;
    },
    async start(url) {
      await plans.ensureDefault();
      await inventory.start();
      await leases.start();
      await apps.start();
      await installs.start();
      await hosts.start();
      enforcer.start();
      notifications.start(url);
      recheck = setInterval(() => {
        void sessions.recheck(credentialEnded);
        void notifications.streams.recheck(credentialEnded);
      }, CREDENTIAL_RECHECK_MS);
      recheck.unref();
    },
    async drain() {
      clearInterval(recheck);
      clearInterval(orphanCheck);
      await orphanRun;
      sessions.closeAll();
      await notifications.drain();
      await enforcer.close();
      await Promise.all([leases.close(), installs.close(), apps.close()]);
    },
    async close() {
      await leases.close();
      await registry.close();
      await inventory.close();
    },
  };
}
