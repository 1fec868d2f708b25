import { randomBytes } from 'node:crypto';
import { SecretBox } from '../../../src/notifications/webhooks/secrets.js';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { revokeUserSessions } from '../../../src/auth/sessions.js';
import { LoneNode } from '../../../src/cluster/cluster.js';
import type { Database } from '../../../src/db/database.js';
import type { DB } from '../../../src/db/schema.js';
import { systemCause } from '../../../src/events/types.js';
import { EmailDispatcher } from '../../../src/notifications/email/dispatcher.js';
import { SmtpMailer } from '../../../src/notifications/email/mailer.js';
import { enqueueEmail, type QueuedEmail } from '../../../src/notifications/email/queue.js';
import { EmailTemplates, VERIFICATION_KIND } from '../../../src/notifications/email/templates.js';
import { UserService } from '../../../src/users/service.js';
import { ManualClock } from '../../helpers/clock.js';
import { openTestDatabase } from '../../helpers/database.js';
import { SMTP_USER, startTestSmtp, type TestSmtp } from './smtp.js';

const FROM = 'cloudphone <cloudphone@localhost>';
const PUBLIC_URL = 'http://127.0.0.1:8080';
const silent = { debug: () => undefined, warn: () => undefined, error: () => undefined };

const expiring: QueuedEmail = {
  userId: null,
  to: 'alice@example.com',
  kind: 'lease.expiring',
  title: 'Lease lse_1 expires in 5 minutes',
  body: 'Renew it to keep <your> devices & their state.',
  link: '/v1/leases/lse_1',
  data: { lease: { id: 'lse_1' }, minutesLeft: 5 },
};

let database: Database;
let db: Kysely<DB>;
let smtp: TestSmtp;
let dataDir: string;
let clock: ManualClock;
let closers: (() => Promise<void> | void)[];

beforeEach(async () => {
  database = await openTestDatabase();
  db = database.db;
  smtp = await startTestSmtp();
  dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-email-'));
  clock = new ManualClock();
  closers = [];
});

afterEach(async () => {
  for (const close of closers.reverse()) await close();
  await smtp.close();
  await database.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Seals the verification links, as the email service does. */
const secrets = new SecretBox(randomBytes(32));

function dispatcher(
  options: { url?: string; cluster?: LoneNode; concurrency?: number; closeTimeoutMs?: number } = {},
): EmailDispatcher {
  const mailer = new SmtpMailer({ url: options.url ?? smtp.url, from: FROM });
  const sender = new EmailDispatcher({
    db,
    clock: clock.now,
    log: silent,
    mailer,
    templates: new EmailTemplates({ dataDir, publicUrl: () => PUBLIC_URL }),
    secrets,
    cluster: options.cluster,
    concurrency: options.concurrency,
    closeTimeoutMs: options.closeTimeoutMs,
    // No jitter: the first retry is due exactly 5 s later.
    random: () => 0.5,
  });
  closers.push(() => mailer.close(), () => sender.close());
  return sender;
}

async function queue(email: QueuedEmail = expiring): Promise<void> {
  await db.transaction().execute((trx) => enqueueEmail(trx, email, clock.now()));
}

function messages() {
  return db.selectFrom('email_messages').selectAll().orderBy('created_at').orderBy('id').execute();
}

describe('the email dispatcher', () => {
  it('sends a queued email over SMTP with its headers, both parts and the link under the public URL', async () => {
    await queue();
    await dispatcher().sendDue();

    const { mail, recipients, user, secure } = await smtp.nth(1);
    expect(user).toBe(SMTP_USER);
    expect(secure).toBe(false);
    expect(recipients).toEqual(['alice@example.com']);
    expect(mail.from?.value).toEqual([{ address: 'cloudphone@localhost', name: 'cloudphone' }]);
    expect(mail.to).toMatchObject({ value: [{ address: 'alice@example.com' }] });
    expect(mail.subject).toBe('[cloudphone] Lease lse_1 expires in 5 minutes');
    expect(mail.text).toContain('Renew it to keep <your> devices & their state.');
    expect(mail.text).toContain(`${PUBLIC_URL}/v1/leases/lse_1`);
    expect(mail.text).toContain('"lease expiring"');
    expect(mail.html).toContain('Renew it to keep &lt;your&gt; devices &amp; their state.');
    expect(mail.html).toContain(`<a href="${PUBLIC_URL}/v1/leases/lse_1">`);

    const [row] = await messages();
    expect(row).toMatchObject({ status: 'sent', attempts: 1, last_error: null, next_attempt_at: null });
    expect(row!.sent_at).toBe(clock.now().toISOString());
  });

  it('sends over smtps:// with TLS from the start', async () => {
    const tls = await startTestSmtp({ secure: true });
    try {
      await queue();
      await dispatcher({ url: tls.url }).sendDue();
      const received = await tls.nth(1);
      expect(received).toMatchObject({ secure: true, user: SMTP_USER, recipients: ['alice@example.com'] });
      expect((await messages())[0]!.status).toBe('sent');
    } finally {
      await tls.close();
    }
  });

  it('retries a message the server refuses for now (451) and records the attempt', async () => {
    smtp.refuse({ code: 451, message: 'Try again later' });
    await queue();
    const sender = dispatcher();

    await sender.sendDue();
    let [row] = await messages();
    expect(row).toMatchObject({ status: 'pending', attempts: 1, sent_at: null });
    expect(row!.last_error).toContain('451');
    expect(row!.next_attempt_at).toBe(new Date(clock.now().getTime() + 5000).toISOString());
    expect(smtp.received).toHaveLength(0);

    // Not due yet.
    clock.advance(4);
    await sender.sendDue();
    expect((await messages())[0]!.attempts).toBe(1);

    clock.advance(1);
    await sender.sendDue();
    [row] = await messages();
    expect(row).toMatchObject({ status: 'sent', attempts: 2, last_error: null, next_attempt_at: null });
    expect((await smtp.nth(1)).mail.subject).toBe('[cloudphone] Lease lse_1 expires in 5 minutes');
  });

  it('gives up at once on a permanent refusal (550)', async () => {
    smtp.refuse({ code: 550, message: 'No such mailbox' });
    await queue();
    await dispatcher().sendDue();
    const [row] = await messages();
    expect(row).toMatchObject({ status: 'failed', attempts: 1, next_attempt_at: null, sent_at: null });
    expect(row!.last_error).toContain('550');
  });

  it('marks an email failed after its tenth failed attempt', async () => {
    smtp.refuse(...Array.from({ length: 10 }, () => ({ code: 451, message: 'Still busy' })));
    await queue();
    const sender = dispatcher();
    for (let attempt = 1; attempt <= 10; attempt++) {
      await sender.sendDue();
      const [row] = await messages();
      expect(row!.attempts).toBe(attempt);
      expect(row!.status).toBe(attempt < 10 ? 'pending' : 'failed');
      clock.advance(25 * 3600);
    }
    await sender.sendDue();
    expect((await messages())[0]!.attempts).toBe(10);
    expect(smtp.received).toHaveLength(0);
  });

  it('does not send an email first tried more than 3 days after it was queued, as after a time with email off', async () => {
    await queue();
    clock.advance(3 * 24 * 3600 + 1);
    await dispatcher().sendDue();
    const [row] = await messages();
    expect(row).toMatchObject({ status: 'failed', attempts: 1, sent_at: null });
    expect(row!.last_error).toContain('too old');
    expect(smtp.received).toHaveLength(0);
  });

  it('keeps retrying when the server refuses the credentials, and never records the password', async () => {
    await queue();
    const url = new URL(smtp.url);
    url.password = 'not-the-password';
    await dispatcher({ url: url.href }).sendDue();
    const [row] = await messages();
    expect(row).toMatchObject({ status: 'pending', attempts: 1 });
    expect(row!.last_error).toMatch(/auth|credentials|535/i);
    expect(row!.last_error).not.toContain('not-the-password');
  });

  it('fails an email of a kind no template exists for, without reading any file named after it', async () => {
    await queue({ ...expiring, kind: '../../../etc/passwd' });
    await dispatcher().sendDue();
    const [row] = await messages();
    expect(row).toMatchObject({ status: 'failed', attempts: 1 });
    expect(row!.last_error).toContain('no email template');
  });

  it("uses the admin's templates from the data directory, escaping the values in HTML", async () => {
    const folder = join(dataDir, 'templates', 'email');
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, 'lease.expiring.subject.txt'), 'Hurry: {{minutesLeft}} minutes left on {{lease.id}}\n');
    writeFileSync(join(folder, 'lease.expiring.txt'), 'Plain: {{body}} -> {{link}}');
    writeFileSync(join(folder, 'lease.expiring.html'), '<p>{{body}}</p><a href="{{link}}">{{unknown}}go</a>');
    await queue();
    await dispatcher().sendDue();
    const { mail } = await smtp.nth(1);
    expect(mail.subject).toBe('Hurry: 5 minutes left on lse_1');
    expect(mail.text?.trim()).toBe(`Plain: Renew it to keep <your> devices & their state. -> ${PUBLIC_URL}/v1/leases/lse_1`);
    expect(mail.html).toContain(
      `<p>Renew it to keep &lt;your&gt; devices &amp; their state.</p><a href="${PUBLIC_URL}/v1/leases/lse_1">go</a>`,
    );
  });

  it('forgets the verification link once the mail is sent', async () => {
    await queue({ ...expiring, kind: VERIFICATION_KIND, link: secrets.seal(`${PUBLIC_URL}/v1/email-verifications?token=secret`) });
    await dispatcher().sendDue();
    expect((await smtp.nth(1)).mail.text).toContain('token=secret');
    const [row] = await messages();
    expect(row).toMatchObject({ status: 'sent', link: null });
  });

  it("sends a user's notification only while the address is still their verified one", async () => {
    const users = new UserService({ db, clock: clock.now, sessions: { revokeUserSessions } });
    const alice = await users.create({ username: 'alice', password: 'correct-horse-battery-staple', role: 'member' }, systemCause);
    const at = clock.now().toISOString();
    await db
      .insertInto('user_emails')
      .values({ user_id: alice.id, email: 'alice@example.com', verified_at: at, token_hash: null, token_expires_at: null, updated_at: at })
      .execute();
    await queue({ ...expiring, userId: alice.id, title: 'first' });
    const sender = dispatcher();
    await sender.sendDue();
    expect((await smtp.nth(1)).mail.subject).toBe('[cloudphone] first');

    await queue({ ...expiring, userId: alice.id, title: 'second' });
    await db.updateTable('user_emails').set({ email: 'alice@example.org', verified_at: null }).execute();
    await sender.sendDue();
    const rows = await messages();
    expect(rows.map((row) => row.status)).toEqual(['sent', 'failed']);
    expect(rows[1]!.last_error).toContain('no longer the verified address');
    expect(smtp.received).toHaveLength(1);
  });

  it('sends only on the leader, from the moment it leads', async () => {
    const cluster = new LoneNode('node-1');
    const sender = dispatcher({ cluster });
    sender.start();
    await queue();
    await sender.sendDue();
    expect((await messages())[0]!.status).toBe('pending');

    await cluster.start();
    await smtp.nth(1);
    await sender.close();
    await cluster.close();
    expect((await messages())[0]!.status).toBe('sent');
  });

  it('hands a few emails to the server at once, and sends them all', async () => {
    smtp.delayMs = 100;
    for (let i = 0; i < 7; i++) await queue({ ...expiring, title: `Lease ${i}` });
    await dispatcher({ concurrency: 3 }).sendDue();
    expect(smtp.received).toHaveLength(7);
    expect(smtp.maxConcurrent()).toBe(3);
    expect((await messages()).every((row) => row.status === 'sent')).toBe(true);
  });

  it('close waits for the emails being sent and stops sending', async () => {
    smtp.delayMs = 200;
    await queue();
    const sender = dispatcher();
    const sending = sender.sendDue();
    await sender.close();
    expect((await messages())[0]!.status).toBe('sent');
    await sending;
    await queue();
    await sender.sendDue();
    expect(smtp.received).toHaveLength(1);
  });

  it('close stops waiting for a slow server after its timeout, leaving the email pending', async () => {
    smtp.delayMs = 1500;
    await queue();
    const sender = dispatcher({ closeTimeoutMs: 100 });
    const sending = sender.sendDue();
    const started = Date.now();
    await sender.close();
    expect(Date.now() - started).toBeLessThan(1000);
    expect((await messages())[0]!.status).toBe('pending');
    await sending;
    expect((await messages())[0]!.status).toBe('sent');
  });
});
