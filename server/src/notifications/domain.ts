import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import type { Cluster } from '../cluster/cluster.js';
import type { ServerConfig } from '../config.js';
import type { DB } from '../db/schema.js';
import type { RevocationListener } from '../revocations.js';
import { createEmail } from './email/domain.js';
import type { EmailHandlers } from './email/handlers.js';
import { EventFeed } from './feed.js';
import { createInbox } from './inbox/domain.js';
import type { InboxHandlers } from './inbox/handlers.js';
import { eventStreamHandlers, type EventStreamHandlers } from './stream-handlers.js';
import { StreamRegistry, type StreamCredential } from './stream.js';
import { WebhookDispatcher } from './webhooks/dispatcher.js';
import { webhookHandlers, type WebhookHandlers } from './webhooks/handlers.js';
import { SecretBox } from './webhooks/secrets.js';
import { WebhookService } from './webhooks/service.js';

export type NotificationHandlers = EventStreamHandlers & WebhookHandlers & InboxHandlers & EmailHandlers;

export interface Notifications {
  handlers: NotificationHandlers;
  /** The open event streams, which end when their credential does. */
  streams: RevocationListener & { recheck(ended: (credential: StreamCredential) => Promise<string | null>): Promise<void> };
  /** Starts the feed and the senders; `url` is where the server listens, the public URL unless one is configured. */
  start(url: string): void;
  /** Ends the live streams and stops the senders (deliveries in flight are cut short, and sent again later). */
  drain(): Promise<void>;
}

/** How long shutdown waits for webhook attempts in flight; one cut short is due again, under the same webhook-id. */
const WEBHOOK_CLOSE_MS = 2000;

/**
 * Notifications over one database: the live event stream, the inbox, webhooks and email. The event log is their
 * one source: `appendEvent` queues each event's webhook deliveries, notifications and emails in the event's own
 * transaction, and the feed follows the log in commit order for the live streams and wakes the senders.
 */
export async function createNotifications(deps: {
  db: Kysely<DB>;
  clock: () => Date;
  config: ServerConfig;
  log: FastifyBaseLogger;
  cluster: Cluster;
  /** The lease service, which warns of expiring leases. */
  leases: () => { warnExpiring(withinMinutes: number): Promise<number> };
}): Promise<Notifications> {
  const { db, clock, config, log, cluster, leases } = deps;
  let listening = '';
  const publicUrl = () => config.publicUrl ?? listening;
  const feed = new EventFeed({ db, cluster, log: log.child({ component: 'events' }) });
  const streams = new StreamRegistry({ db });
  const secrets = await SecretBox.open(config.dataDir);
  const dispatcher = new WebhookDispatcher({
    db,
    clock,
    log: log.child({ component: 'webhooks' }),
    cluster,
    secrets,
    allowPrivate: config.webhookAllowPrivate,
    timeoutMs: config.webhookTimeoutSeconds * 1000,
    closeTimeoutMs: WEBHOOK_CLOSE_MS,
  });
  const webhooks = new WebhookService({
    db,
    clock,
    secrets,
    allowPrivate: config.webhookAllowPrivate,
    wake: () => dispatcher.wake(),
  });
  const inbox = createInbox({ db, clock, config: { ...config, publicUrl }, log, cluster, leases });
  const email = createEmail({ db, clock, config: { ...config, publicUrl }, log, cluster, secrets });
  // New events mean new deliveries and emails: they are queued in the events' transactions.
  feed.onAppended(() => {
    dispatcher.wake();
    email.wake();
  });
  return {
    handlers: {
      ...eventStreamHandlers({ feed, streams, heartbeatMs: config.streamHeartbeatSeconds * 1000 }),
      ...webhookHandlers(webhooks),
      ...inbox.handlers,
      ...email.handlers,
    },
    streams,
    start(url) {
      listening = url;
      feed.start();
      dispatcher.start();
      inbox.start();
      email.start();
    },
    async drain() {
      streams.closeAll();
      await Promise.all([dispatcher.close(), inbox.close(), email.close()]);
      await feed.close();
    },
  };
}
