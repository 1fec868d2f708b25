import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import type { Cluster } from '../../cluster/cluster.js';
import type { DB } from '../../db/schema.js';
import { inboxHandlers, type InboxHandlers } from './handlers.js';
import { InboxJanitor } from './janitor.js';
import { InboxService } from './service.js';

export interface InboxConfig {
  /** The server's URL as users reach it: notification links start with it. */
  publicUrl: () => string;
  inboxRetentionDays: number;
  /** 0: no warnings. */
  leaseExpiryWarningMinutes: number;
}

export interface InboxDomain {
  handlers: InboxHandlers;
  service: InboxService;
  janitor: InboxJanitor;
  /** Starts the leader-only work: lease expiry warnings and the retention purge. */
  start(): void;
  close(): Promise<void>;
}

/**
 * The inbox over one database. Notifications themselves are written by `notifyFromEvent` (outbox.ts), which
 * `appendEvent` calls in every event's transaction.
 */
export function createInbox(deps: {
  db: Kysely<DB>;
  clock: () => Date;
  config: InboxConfig;
  log: FastifyBaseLogger;
  cluster: Cluster;
  /** The lease service, which warns of expiring leases. */
  leases: () => { warnExpiring(withinMinutes: number): Promise<number> };
}): InboxDomain {
  const { db, clock, config, log, cluster, leases } = deps;
  const service = new InboxService({ db, clock, publicUrl: config.publicUrl, retentionDays: config.inboxRetentionDays });
  const janitor = new InboxJanitor({
    clock,
    log: log.child({ component: 'inbox' }),
    cluster,
    warningMinutes: config.leaseExpiryWarningMinutes,
    leases,
    inbox: service,
  });
  return {
    handlers: inboxHandlers(service),
    service,
    janitor,
    start: () => janitor.start(),
    close: () => janitor.close(),
  };
}
