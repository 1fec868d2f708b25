import { randomBytes } from 'node:crypto';
import { SecretBox } from '../../../src/notifications/webhooks/secrets.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemCause } from '../../../src/events/types.js';
import { EmailDispatcher } from '../../../src/notifications/email/dispatcher.js';
import { SmtpMailer } from '../../../src/notifications/email/mailer.js';
import { EmailService } from '../../../src/notifications/email/service.js';
import { EmailTemplates, VERIFICATION_KIND } from '../../../src/notifications/email/templates.js';
import { domainFixture, expectRejectedWithoutWrites, type DomainFixture, type SignedIn } from '../../domains/fixture.js';
import { startTestSmtp, type TestSmtp } from './smtp.js';

const PUBLIC_URL = 'http://127.0.0.1:8080';
const silent = { debug: () => undefined, warn: () => undefined, error: () => undefined };

let fixture: DomainFixture;
let smtp: TestSmtp;
let mailer: SmtpMailer;
let dispatcher: EmailDispatcher;
let emails: EmailService;
let alice: SignedIn;
let dataDir: string;
let woken: number;

/** Seals the verification links in the queue. */
const secrets = new SecretBox(randomBytes(32));

beforeEach(async () => {
  fixture = await domainFixture();
  smtp = await startTestSmtp();
  dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-verification-'));
  mailer = new SmtpMailer({ url: smtp.url, from: 'cloudphone <cloudphone@localhost>' });
  dispatcher = new EmailDispatcher({
    db: fixture.db,
    clock: fixture.clock.now,
    log: silent,
    mailer,
    templates: new EmailTemplates({ dataDir, publicUrl: () => PUBLIC_URL }),
    secrets,
  });
  woken = 0;
  emails = new EmailService({
    db: fixture.db,
    clock: fixture.clock.now,
    publicUrl: () => `${PUBLIC_URL}/`,
    unavailable: null,
    queued: () => (woken += 1),
    secrets,
  });
  alice = await fixture.signIn('alice', 'member');
});

afterEach(async () => {
  await dispatcher.close();
  mailer.close();
  await smtp.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Sends what is queued and returns the token of the `count`-th mail received. */
async function mailedToken(count: number): Promise<string> {
  await dispatcher.sendDue();
  const { mail } = await smtp.nth(count);
  const link = /http:\/\/127\.0\.0\.1:8080\/v1\/email-verifications\?token=([A-Za-z0-9_-]+)/.exec(mail.text ?? '');
  expect(link).not.toBeNull();
  expect(mail.html).toContain(`href="${link![0]}"`);
  return link![1]!;
}

describe('email verification', () => {
  it('stores the address unverified, mails a one-time link, and verifies it once with an event', async () => {
    expect(await emails.get(alice.principal)).toEqual({ email: null, verified: false, verifiedAt: null });
    const set = await emails.set(alice.principal, 'alice@example.com');
    expect(set).toEqual({ email: 'alice@example.com', verified: false, verifiedAt: null });
    expect(woken).toBe(1);

    const token = await mailedToken(1);
    expect(token).toHaveLength(43);
    expect(smtp.received[0]!.recipients).toEqual(['alice@example.com']);
    const stored = await fixture.db.selectFrom('user_emails').selectAll().executeTakeFirstOrThrow();
    expect(stored.token_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(stored)).not.toContain(token);
    expect(stored.token_expires_at).toBe(new Date(fixture.clock.now().getTime() + 24 * 3600 * 1000).toISOString());
    // The queue kept the link only until it was sent.
    const queued = await fixture.db.selectFrom('email_messages').selectAll().execute();
    expect(queued).toMatchObject([{ kind: VERIFICATION_KIND, status: 'sent', link: null }]);
    expect(JSON.stringify(queued)).not.toContain(token);

    const mark = await fixture.eventCount();
    fixture.clock.advance(60);
    expect(await emails.verify(token, 'req_verify')).toBe('alice@example.com');
    expect(await emails.get(alice.principal)).toEqual({
      email: 'alice@example.com',
      verified: true,
      verifiedAt: fixture.clock.now().toISOString(),
    });
    expect(await fixture.eventsSince(mark)).toEqual([
      {
        type: 'user.email_verified',
        actorType: 'user',
        actorId: alice.user.id,
        subjectType: 'user',
        subjectId: alice.user.id,
        data: { userId: alice.user.id },
        requestId: 'req_verify',
      },
    ]);
    await expectRejectedWithoutWrites(fixture, () => emails.verify(token, null), 'invalid_verification_token');
  });

  it('refuses an unknown token and one past its 24 hours, writing nothing', async () => {
    await emails.set(alice.principal, 'alice@example.com');
    const token = await mailedToken(1);
    await expectRejectedWithoutWrites(fixture, () => emails.verify(`${token}x`, null), 'invalid_verification_token');
    fixture.clock.advance(24 * 3600);
    await expectRejectedWithoutWrites(fixture, () => emails.verify(token, null), 'invalid_verification_token');
    expect((await emails.get(alice.principal)).verified).toBe(false);
  });

  it('setting the verified address again mails nothing; another address resets the verification', async () => {
    await emails.set(alice.principal, 'alice@example.com');
    await emails.verify(await mailedToken(1), null);

    expect(await emails.set(alice.principal, 'alice@example.com')).toMatchObject({ verified: true });
    expect(woken).toBe(1);
    expect(await fixture.db.selectFrom('email_messages').select('id').execute()).toHaveLength(1);

    expect(await emails.set(alice.principal, 'alice@example.org')).toEqual({
      email: 'alice@example.org',
      verified: false,
      verifiedAt: null,
    });
    const token = await mailedToken(2);
    expect(smtp.received[1]!.recipients).toEqual(['alice@example.org']);
    expect(await emails.verify(token, null)).toBe('alice@example.org');
  });

  it('a new link voids the previous one, and one still queued is never sent', async () => {
    await emails.set(alice.principal, 'alice@example.com');
    const first = await mailedToken(1);
    // A minute apart: one verification mail a minute at most.
    fixture.clock.advance(61);
    await emails.set(alice.principal, 'alice@example.net');
    fixture.clock.advance(61);
    await emails.set(alice.principal, 'alice@example.org');
    const last = await mailedToken(2);
    expect(smtp.received.map((mail) => mail.recipients)).toEqual([['alice@example.com'], ['alice@example.org']]);
    await expectRejectedWithoutWrites(fixture, () => emails.verify(first, null), 'invalid_verification_token');
    expect(await emails.verify(last, null)).toBe('alice@example.org');
  });

  it('deleting the address voids its link', async () => {
    await emails.set(alice.principal, 'alice@example.com');
    const token = await mailedToken(1);
    await emails.delete(alice.principal);
    await emails.delete(alice.principal);
    expect(await emails.get(alice.principal)).toEqual({ email: null, verified: false, verifiedAt: null });
    await expectRejectedWithoutWrites(fixture, () => emails.verify(token, null), 'invalid_verification_token');
  });

  it('mails no link to the address of a user deleted before it went out', async () => {
    await emails.set(alice.principal, 'alice@example.com');
    await fixture.users.delete(alice.user.id, systemCause);
    await dispatcher.sendDue();
    const [row] = await fixture.db.selectFrom('email_messages').selectAll().execute();
    expect(row).toMatchObject({ status: 'failed', attempts: 1, link: null });
    expect(row!.last_error).toContain('no longer waiting to be verified');
    expect(smtp.received).toEqual([]);
  });

  it('refuses to set an address when no email can be sent, queueing nothing', async () => {
    const off = new EmailService({
      db: fixture.db,
      clock: fixture.clock.now,
      publicUrl: () => PUBLIC_URL,
      unavailable: 'no SMTP server is configured',
      queued: () => (woken += 1),
      secrets,
    });
    await expectRejectedWithoutWrites(fixture, () => off.set(alice.principal, 'alice@example.com'), 'email_unavailable');
    expect(await fixture.db.selectFrom('email_messages').select('id').execute()).toEqual([]);
    expect(woken).toBe(0);
  });
});
