import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { allDevices, eventually } from './device-helpers.js';
import { startTestSmtp, type TestSmtp } from '../notifications/email/smtp.js';
import { countRows, startApi, type Api, type Caller } from './harness.js';

const FROM = 'Device farm <farm@example.com>';

let smtp: TestSmtp;
let api: Api;
let alice: Caller;
let started: Api[];

beforeEach(async () => {
  smtp = await startTestSmtp();
  started = [];
});

afterEach(async () => {
  for (const server of started) await server.close();
  await smtp.close();
});

async function start(options: Parameters<typeof startApi>[0] = {}): Promise<void> {
  api = await startApi(options);
  started.push(api);
  alice = await api.addCaller('member');
}

const withSmtp = () => start({ smtpUrl: smtp.url, mailFrom: FROM });

/** The verification link of the `count`-th mail received. */
async function mailedLink(count: number): Promise<string> {
  const { mail } = await smtp.nth(count);
  const link = /\bhttps?:\/\/\S+\/v1\/email-verifications\?token=[A-Za-z0-9_-]+/.exec(mail.text ?? '');
  expect(link).not.toBeNull();
  return link![0];
}

function emailRows() {
  return api.database.db.selectFrom('email_messages').selectAll().orderBy('created_at').execute();
}

describe('email addresses and their verification', () => {
  it('sets an address, mails the link, and verifies it when the link is opened, once', async () => {
    await withSmtp();
    const set = await api.call('setMyEmail', { token: alice.token, body: { email: 'alice@example.com' } });
    expect(set.status).toBe(202);
    expect(set.body).toEqual({ email: 'alice@example.com', verified: false, verifiedAt: null });

    const link = await mailedLink(1);
    const { mail, recipients } = smtp.received[0]!;
    expect(recipients).toEqual(['alice@example.com']);
    expect(mail.from?.value).toEqual([{ address: 'farm@example.com', name: 'Device farm' }]);
    expect(mail.to).toMatchObject({ value: [{ address: 'alice@example.com' }] });
    expect(mail.subject).toBe('Verify your email address for cloudphone');
    expect(mail.html).toContain(`href="${link}"`);
    expect(link.startsWith(`${api.url}/v1/email-verifications?token=`)).toBe(true);
    expect(await eventually(async () => (await emailRows())[0]?.status === 'sent' && (await emailRows())[0], 5000)).toMatchObject({
      kind: 'email.verification',
      attempts: 1,
      link: null,
    });

    const opened = await fetch(link);
    expect(opened.status).toBe(200);
    expect(opened.headers.get('content-type')).toMatch(/^text\/html/);
    expect(opened.headers.get('cache-control')).toBe('no-store');
    expect(await opened.text()).toContain('alice@example.com is verified');

    const mine = await api.call('getMyEmail', { token: alice.token });
    expect(mine.body).toMatchObject({ email: 'alice@example.com', verified: true });
    expect(mine.body.verifiedAt).toBe(api.clock.now().toISOString());
    const events = await api.call('listEvents', { token: alice.token, query: { type: ['user.email_verified'] } });
    expect(events.status).toBe(200);
    expect(events.body.data).toMatchObject([{ type: 'user.email_verified', data: { userId: alice.userId } }]);

    const again = await api.call('verifyEmail', {
      query: { token: new URL(link).searchParams.get('token')! },
      headers: { accept: 'text/html' },
    });
    expect(again.status).toBe(400);
    expect(again.body.code).toBe('invalid_verification_token');
  });

  it('retries a verification mail the SMTP server refused for now', async () => {
    smtp.refuse({ code: 451, message: 'Greylisted, try again later' });
    await withSmtp();
    await api.call('setMyEmail', { token: alice.token, body: { email: 'alice@example.com' } });
    const [refused] = await eventually(async () => {
      const rows = await emailRows();
      return rows[0]?.attempts === 1 && rows;
    }, 5000);
    expect(refused).toMatchObject({ status: 'pending', sent_at: null });
    expect(refused!.last_error).toContain('451');
    expect(smtp.received).toHaveLength(0);

    api.clock.advance(6);
    const link = await mailedLink(1);
    expect(await eventually(async () => (await emailRows())[0]?.status === 'sent' && (await emailRows())[0], 5000)).toMatchObject({
      attempts: 2,
      last_error: null,
    });
    expect((await fetch(link)).status).toBe(200);
  });

  it('mails with the templates of the data directory', async () => {
    await withSmtp();
    const folder = join(api.server.config.dataDir, 'templates', 'email');
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, 'email.verification.subject.txt'), 'Confirm {{email}} for {{username}}');
    writeFileSync(join(folder, 'email.verification.html'), '<a href="{{link}}">confirm {{username}}</a>');
    await api.call('setMyEmail', { token: alice.token, body: { email: 'alice@example.com' } });
    const link = await mailedLink(1);
    const { mail } = smtp.received[0]!;
    expect(mail.subject).toBe(`Confirm alice@example.com for ${alice.username}`);
    expect(mail.html).toBe(`<a href="${link}">confirm ${alice.username}</a>`);
    // The text part was not overridden.
    expect(mail.text).toContain('24 hours');
  });

  it('deleting the address voids the link on its way', async () => {
    await withSmtp();
    await api.call('setMyEmail', { token: alice.token, body: { email: 'alice@example.com' } });
    const link = await mailedLink(1);
    expect((await api.call('deleteMyEmail', { token: alice.token })).status).toBe(204);
    expect((await api.call('getMyEmail', { token: alice.token })).body).toEqual({
      email: null,
      verified: false,
      verifiedAt: null,
    });
    const opened = await fetch(link);
    expect(opened.status).toBe(400);
    expect(((await opened.json()) as { code: string }).code).toBe('invalid_verification_token');
  });

  it('sends at most one verification mail a minute, so an account cannot flood an address', async () => {
    await withSmtp();
    expect((await api.call('setMyEmail', { token: alice.token, body: { email: 'alice@example.com' } })).status).toBe(202);
    const again = await api.call('setMyEmail', { token: alice.token, body: { email: 'victim@example.com' } });
    expect(again.status).toBe(429);
    expect(again.body.code).toBe('rate_limited');
    expect(Number(again.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await api.call('getMyEmail', { token: alice.token })).body.email).toBe('alice@example.com');
    api.clock.advance(61);
    expect((await api.call('setMyEmail', { token: alice.token, body: { email: 'alice@example.org' } })).status).toBe(202);
    await smtp.nth(2);
    expect(smtp.received.map((received) => received.recipients)).toEqual([['alice@example.com'], ['alice@example.org']]);
  });

  it('refuses an address that is not one, and a token of the wrong form', async () => {
    await withSmtp();
    for (const email of ['not-an-address', 'alice@example.com\r\nBcc: eve@example.com', '']) {
      const response = await api.call('setMyEmail', { token: alice.token, body: { email } });
      expect(response.status).toBe(400);
      expect(response.body.code).toBe('validation_failed');
    }
    const unknown = await api.call('verifyEmail', { query: { token: 'A'.repeat(43) }, headers: { accept: 'text/html' } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.code).toBe('invalid_verification_token');
    expect(await countRows(api.database, ['email_messages', 'user_emails'])).toEqual({ email_messages: 0, user_emails: 0 });
  });
});

describe('notifications by email', () => {
  it("mails a notification the user chose email for to their verified address, and no other", async () => {
    await start({ smtpUrl: smtp.url, mailFrom: FROM, virtualDevices: 1 });
    await eventually(async () => (await allDevices(api, api.admin.token, { state: 'online' })).length === 1, 30_000, 'device online');
    await api.call('setMyEmail', { token: alice.token, body: { email: 'alice@example.com' } });
    expect((await fetch(await mailedLink(1))).status).toBe(200);
    const preferences = await api.call('updateNotificationPreferences', {
      token: alice.token,
      body: { preferences: [{ kind: 'lease.ended', email: true }] },
    });
    expect(preferences.status).toBe(200);

    // A grant at once notifies no one; an admin's release does, by email too now.
    const lease = await api.call('createLease', { token: alice.token, body: { count: 1, ttlSeconds: 3600 } });
    expect(lease.status).toBe(201);
    const released = await api.call('releaseLease', { token: api.admin.token, path: { leaseId: lease.body.id } });
    expect(released.status).toBe(200);

    const { mail, recipients } = await smtp.nth(2);
    expect(recipients).toEqual(['alice@example.com']);
    expect(mail.from?.value).toEqual([{ address: 'farm@example.com', name: 'Device farm' }]);
    expect(mail.subject).toBe('[cloudphone] Lease ended: an admin released it');
    expect(mail.text).toContain(`${api.url}/v1/leases/${lease.body.id}`);
    expect(mail.text).toContain('"lease ended"');
    expect(mail.html).toContain(`<a href="${api.url}/v1/leases/${lease.body.id}">`);
    const rows = await eventually(async () => {
      const all = await emailRows();
      return all.every((row) => row.status === 'sent') && all;
    }, 5000);
    expect(rows.map((row) => row.kind)).toEqual(['email.verification', 'lease.ended']);
    expect(smtp.received).toHaveLength(2);
  });
});

describe('without an SMTP server', () => {
  it('refuses to set an address (409 email_unavailable) and queues nothing', async () => {
    await start();
    const response = await api.call('setMyEmail', { token: alice.token, body: { email: 'alice@example.com' } });
    expect(response.status).toBe(409);
    expect(response.body.code).toBe('email_unavailable');
    expect((await api.call('getMyEmail', { token: alice.token })).body).toEqual({
      email: null,
      verified: false,
      verifiedAt: null,
    });
    expect(await countRows(api.database, ['email_messages', 'user_emails'])).toEqual({ email_messages: 0, user_emails: 0 });
  });
});
