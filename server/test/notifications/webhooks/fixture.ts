import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { afterEach } from 'vitest';
import type { DB } from '../../../src/db/schema.js';
import type { Cause } from '../../../src/events/types.js';
import type { Role } from '../../../src/http/access.js';
import type { Principal } from '../../../src/http/handler.js';
import { SecretBox } from '../../../src/notifications/webhooks/secrets.js';
import { WebhookService, type NewWebhookEndpoint } from '../../../src/notifications/webhooks/service.js';
import { ManualClock } from '../../helpers/clock.js';
import { openTestDatabase } from '../../helpers/database.js';
import { insertUser } from '../../helpers/users.js';

/** A webhook service over a fresh database on this run's engine, with a manual clock and a count of its wakes. */
export interface WebhookFixture {
  db: Kysely<DB>;
  clock: ManualClock;
  box: SecretBox;
  webhooks: WebhookService;
  /** How many times the service woke the dispatcher. */
  wakes(): number;
  user(username: string, role?: Role): Promise<Principal>;
  causeOf(principal: Principal): Cause;
  /** Creates an endpoint on a loopback receiver (the fixture allows private targets). */
  endpoint(owner: Principal, input?: Partial<NewWebhookEndpoint>): Promise<string>;
}

const open: (() => Promise<void>)[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((close) => close()));
});

export async function webhookFixture(options: { allowPrivate?: boolean } = {}): Promise<WebhookFixture> {
  const database = await openTestDatabase();
  open.push(() => database.close());
  const { db } = database;
  const clock = new ManualClock('2026-11-20T09:00:00.000Z');
  const box = new SecretBox(randomBytes(32));
  let wakes = 0;
  const webhooks = new WebhookService({
    db,
    clock: clock.now,
    secrets: box,
    allowPrivate: options.allowPrivate ?? true,
    wake: () => {
      wakes += 1;
    },
  });
  const causeOf = (principal: Principal): Cause => ({
    actor: { type: 'user', id: principal.userId, username: principal.username },
    requestId: 'req_test',
  });
  return {
    db,
    clock,
    box,
    webhooks,
    wakes: () => wakes,
    user: (username, role = 'member') => insertUser(db, username, role, clock.now().toISOString()),
    causeOf,
    async endpoint(owner, input = {}) {
      const created = await webhooks.create(owner, { url: 'http://127.0.0.1:9/hook', ...input }, causeOf(owner));
      return created.id;
    },
  };
}
