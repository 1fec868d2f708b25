import { randomBytes } from 'node:crypto';
import { SecretBox } from '../../../src/notifications/webhooks/secrets.js';
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { LoneNode } from '../../../src/cluster/cluster.js';
import type { DB } from '../../../src/db/schema.js';
import { createEmail } from '../../../src/notifications/email/domain.js';
import { describeSmtpUrl } from '../../../src/notifications/email/mailer.js';

/** A logger keeping its lines; the database is never reached by what these tests do. */
function setup(smtpUrl: string | undefined) {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) }) as FastifyBaseLogger;
  const cluster = new LoneNode('node-1');
  const email = createEmail({
    db: {} as Kysely<DB>,
    clock: () => new Date(),
    config: { smtpUrl, mailFrom: 'cloudphone <cloudphone@localhost>', publicUrl: () => 'http://127.0.0.1:8080', dataDir: '/nonexistent' },
    log,
    cluster,
    secrets: new SecretBox(randomBytes(32)),
  });
  return { email, lines };
}

describe('email at start-up', () => {
  it('says once that email is off, and why, when no SMTP server is configured', async () => {
    const { email, lines } = setup(undefined);
    email.start();
    email.wake();
    await email.close();
    expect(lines.map((line) => line.msg)).toEqual([
      'email is off: CLOUDPHONE_SMTP_URL is not set, so no email is sent and users cannot set an address',
    ]);
  });

  it('says which server it sends through, without the password', async () => {
    const { email, lines } = setup('smtps://mailer:hunter2-secret@127.0.0.1:465');
    email.start();
    await email.close();
    expect(lines.find((line) => line.msg === 'email is on')).toMatchObject({
      smtp: 'smtps://mailer@127.0.0.1:465',
      from: 'cloudphone <cloudphone@localhost>',
    });
    expect(JSON.stringify(lines)).not.toContain('hunter2');
  });
});

describe('describeSmtpUrl', () => {
  it('keeps the scheme, user, host and port, never the password', () => {
    expect(describeSmtpUrl('smtp://user:p%40ss@127.0.0.1:2525/?pool=true')).toBe('smtp://user@127.0.0.1:2525');
    expect(describeSmtpUrl('smtp://127.0.0.1')).toBe('smtp://127.0.0.1');
    expect(describeSmtpUrl('not a url :secret@')).toBe('(not a URL)');
  });
});
