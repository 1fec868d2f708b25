import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import type { Cluster } from '../../cluster/cluster.js';
import type { DB } from '../../db/schema.js';
import { EmailDispatcher } from './dispatcher.js';
import { emailHandlers, type EmailHandlers } from './handlers.js';
import { describeSmtpUrl, SmtpMailer, type Mailer } from './mailer.js';
import type { SecretBox } from '../webhooks/secrets.js';
import { EmailService } from './service.js';
import { EmailTemplates } from './templates.js';

export interface EmailConfig {
  /** `smtp://` or `smtps://` with the credentials in the URL; no email is sent without it. */
  smtpUrl?: string | undefined;
  /** The From of every email. */
  mailFrom: string;
  /** The server's URL as users reach it: links in emails start with it. */
  publicUrl: () => string;
  /** Holds the admin's templates, in `templates/email/`. */
  dataDir: string;
}

export interface EmailDomain {
  handlers: EmailHandlers;
  /** Makes the sender look for due emails now: call after a commit that may have queued some. */
  wake(): void;
  /** Says in the log whether email is on, and on which server, and starts the sender when it is. */
  start(): void;
  /** Stops the sender once the emails being sent are done, waiting a few seconds at most. */
  close(): Promise<void>;
}

/**
 * Email over one database: the addresses and their verification, and, when an SMTP server is configured, the
 * leader-only sender of the queue. Without one, email is off: nothing is sent and setting an address is refused.
 */
export function createEmail(deps: {
  db: Kysely<DB>;
  clock: () => Date;
  config: EmailConfig;
  log: FastifyBaseLogger;
  cluster?: Cluster | undefined;
  /** Seals the verification links in the queue. */
  secrets: SecretBox;
}): EmailDomain {
  const { db, clock, config, log, cluster, secrets } = deps;
  const { smtpUrl } = config;
  const mailer: Mailer | null = smtpUrl === undefined ? null : new SmtpMailer({ url: smtpUrl, from: config.mailFrom });
  const dispatcher =
    mailer === null
      ? null
      : new EmailDispatcher({
          db,
          clock,
          log: log.child({ component: 'email' }),
          mailer,
          templates: new EmailTemplates({ dataDir: config.dataDir, publicUrl: config.publicUrl }),
          cluster,
          secrets,
        });
  const wake = () => dispatcher?.wake();
  const service = new EmailService({
    db,
    clock,
    publicUrl: config.publicUrl,
    unavailable: mailer === null ? 'no SMTP server is configured (CLOUDPHONE_SMTP_URL)' : null,
    queued: wake,
    secrets,
  });
  return {
    handlers: emailHandlers(service),
    wake,
    start() {
      if (dispatcher === null) {
        log.info('email is off: CLOUDPHONE_SMTP_URL is not set, so no email is sent and users cannot set an address');
        return;
      }
      log.info({ smtp: describeSmtpUrl(smtpUrl!), from: config.mailFrom }, 'email is on');
      dispatcher.start();
    },
    async close() {
      await dispatcher?.close();
      mailer?.close();
    },
  };
}
