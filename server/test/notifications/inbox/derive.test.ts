import { describe, expect, it } from 'vitest';
import type { EventType } from '../../../src/events/types.js';
import { defaultPreference, NOTIFICATION_KINDS, notificationsFor } from '../../../src/notifications/inbox/derive.js';
import { appended } from './fixture.js';

const LEASE = 'lse_01JDX7M3N4P5Q6R7S8T9V0W1X2';

function lease(status = 'granted', count = 2) {
  return { id: LEASE, userId: 'usr_alice', status, count, expiresAt: '2026-11-21T14:15:00.000Z' };
}

const leaseLink = { link: `/v1/leases/${LEASE}`, subject: { type: 'lease', id: LEASE } };
const device = { id: 'dev_1', serial: 'emulator-5554', hostId: 'hst_1', kind: 'emulator', state: 'offline', model: 'Pixel 8' };
const userBudget = { id: 'bdg_1', scope: 'user', userId: 'usr_alice', project: null, currency: 'EUR', amount: 5000, thresholds: [50, 80] };
const projectBudget = { ...userBudget, scope: 'project', userId: null, project: 'checkout' };

describe('notificationsFor', () => {
  it('tells the holder of a lease granted after waiting in the queue, naming its devices', () => {
    expect(notificationsFor(appended('lease.granted', { lease: lease(), deviceIds: ['dev_1', 'dev_2'], queued: true }))).toEqual([
      {
        recipient: 'usr_alice',
        kind: 'lease.granted',
        title: 'Lease granted: your 2 devices are ready',
        body: `Lease ${LEASE} waited in the queue and now holds 2 devices until 2026-11-21T14:15:00.000Z.`,
        ...leaseLink,
      },
    ]);
    const [one] = notificationsFor(appended('lease.granted', { lease: lease('granted', 1), deviceIds: ['dev_1'], queued: true }));
    expect(one!.title).toBe('Lease granted: your 1 device is ready');
  });

  it('says nothing of a lease granted at once: its request had the answer', () => {
    expect(notificationsFor(appended('lease.granted', { lease: lease(), deviceIds: ['dev_1'], queued: false }))).toEqual([]);
    expect(notificationsFor(appended('lease.granted', { lease: lease(), deviceIds: ['dev_1'] }))).toEqual([]);
  });

  it('warns the holder of a lease about to expire, with the minutes left', () => {
    expect(notificationsFor(appended('lease.expiring', { lease: lease(), minutesLeft: 5 }))).toEqual([
      {
        recipient: 'usr_alice',
        kind: 'lease.expiring',
        title: 'Lease expiring in 5 minutes',
        body: `Lease ${LEASE} (2 devices) expires at 2026-11-21T14:15:00.000Z. Renew it to keep the devices.`,
        ...leaseLink,
      },
    ]);
    expect(notificationsFor(appended('lease.expiring', { lease: lease(), minutesLeft: 1 }))[0]!.title).toBe('Lease expiring in 1 minute');
  });

  it('tells the holder of an expired lease', () => {
    expect(notificationsFor(appended('lease.expired', { lease: lease('expired') }))).toEqual([
      {
        recipient: 'usr_alice',
        kind: 'lease.expired',
        title: 'Lease expired',
        body: `Lease ${LEASE} (2 devices) reached its end time; its devices are being reset.`,
        ...leaseLink,
      },
    ]);
  });

  it.each([
    ['force_released', 'Lease ended: an admin released it'],
    ['host_removed', 'Lease ended: the host of its devices was removed'],
    ['user_disabled', 'Lease ended: your account was disabled'],
    ['budget_exhausted', 'Lease ended: the budget paying for it is spent'],
    ['quota_exhausted', 'Lease ended: your minutes for this period are used up'],
  ])('tells the holder of a lease ended for %s, saying why', (reason, title) => {
    const drafts = notificationsFor(appended('lease.released', { lease: lease('released'), reason }));
    expect(drafts).toEqual([{ recipient: 'usr_alice', kind: 'lease.ended', title, body: expect.stringContaining(LEASE), ...leaseLink }]);
    expect(drafts[0]!.body).toContain('lease was ended');
  });

  it('says a queued lease was cancelled when that is what ended it', () => {
    const [draft] = notificationsFor(appended('lease.released', { lease: lease('cancelled'), reason: 'budget_exhausted' }));
    expect(draft!.body).toBe(`Your queued lease was cancelled (${LEASE}, 2 devices) because the budget paying for it is spent.`);
  });

  it.each(['released', 'cancelled', 'timed_out'])('says nothing of a lease %s by its holder or its wait', (reason) => {
    expect(notificationsFor(appended('lease.released', { lease: lease('released'), reason }))).toEqual([]);
  });

  it("tells the job's user of a failed install", () => {
    const data = { jobId: 'ijb_1', appId: 'app_1', deviceId: 'dev_1', reason: 'INSTALL_FAILED_OLDER_SDK' };
    expect(notificationsFor(appended('app.install.failed', data, 'usr_bob'))).toEqual([
      {
        recipient: 'usr_bob',
        kind: 'install.failed',
        title: 'Install of app app_1 failed',
        body: 'Installing app app_1 on device dev_1 failed: INSTALL_FAILED_OLDER_SDK',
        link: '/v1/install-jobs/ijb_1',
        subject: { type: 'install_job', id: 'ijb_1' },
      },
    ]);
    expect(notificationsFor(appended('app.install.failed', data, null))).toEqual([]);
    const names = { packageName: 'com.example.shop', device: { serial: 'emulator-5554', model: 'Pixel 8' } };
    expect(notificationsFor(appended('app.install.failed', data, 'usr_bob'), names)).toMatchObject([
      {
        title: 'Install of com.example.shop failed',
        body: 'Installing com.example.shop on Pixel 8 (emulator-5554) failed: INSTALL_FAILED_OLDER_SDK',
      },
    ]);
  });

  it('tells the holder of a leased device that went offline, naming its model and serial', () => {
    expect(notificationsFor(appended('device.disconnected', { device }, 'usr_alice'))).toEqual([
      {
        recipient: 'usr_alice',
        kind: 'device.offline',
        title: 'Your leased device went offline',
        body: 'Pixel 8 (emulator-5554) disconnected from host hst_1; operations on it fail until it is back.',
        link: '/v1/devices/dev_1',
        subject: { type: 'device', id: 'dev_1' },
      },
    ]);
  });

  it('tells the holder of a leased device that became unauthorized or offline, not of other changes', () => {
    const changed = (to: string, model: string | null = 'Pixel 8') =>
      appended('device.state_changed', { device: { ...device, model, state: to }, from: 'online', to }, 'usr_alice');
    const [unauthorized] = notificationsFor(changed('unauthorized', null));
    expect(unauthorized).toMatchObject({ kind: 'device.offline', title: 'Your leased device is unauthorized', recipient: 'usr_alice' });
    expect(unauthorized!.body).toMatch(/^emulator-5554 no longer authorises/);
    expect(notificationsFor(changed('offline'))).toHaveLength(1);
    expect(notificationsFor(changed('maintenance'))).toEqual([]);
    expect(notificationsFor(changed('online'))).toEqual([]);
  });

  it('says nothing of a device no one holds', () => {
    expect(notificationsFor(appended('device.disconnected', { device }, null))).toEqual([]);
  });

  it("tells a user-scope budget's user of a threshold, with the amounts in the budget's currency", () => {
    const data = { budget: userBudget, period: '2026-11', threshold: 80, spent: 4012 };
    expect(notificationsFor(appended('usage.threshold_reached', data))).toEqual([
      {
        recipient: 'usr_alice',
        kind: 'budget.threshold',
        title: 'Budget 80% used',
        body: 'Your budget of 50.00 EUR has 40.12 EUR spent in 2026-11 (80%).',
        link: '/v1/budgets/bdg_1',
        subject: { type: 'budget', id: 'bdg_1' },
      },
    ]);
  });

  it("tells every admin of a project budget's threshold", () => {
    const [draft] = notificationsFor(appended('usage.threshold_reached', { budget: projectBudget, period: '2026-11', threshold: 50, spent: 2500 }));
    expect(draft).toMatchObject({ recipient: 'admins', kind: 'budget.threshold' });
    expect(draft!.body).toBe("Project checkout's budget of 50.00 EUR has 25.00 EUR spent in 2026-11 (50%).");
  });

  it('tells whom a budget concerns that it is spent, with the leases it ended', () => {
    const data = { budget: { ...userBudget, currency: 'JPY', amount: 500 }, period: '2026-11', spent: 512, leaseIds: ['lse_1', 'lse_2'] };
    expect(notificationsFor(appended('budget.exhausted', data))).toEqual([
      {
        recipient: 'usr_alice',
        kind: 'budget.exhausted',
        title: 'Budget exhausted',
        body: 'Your budget of 500 JPY is spent for 2026-11 (512 JPY). 2 leases it paid for ended.',
        link: '/v1/budgets/bdg_1',
        subject: { type: 'budget', id: 'bdg_1' },
      },
    ]);
    const [project] = notificationsFor(appended('budget.exhausted', { ...data, budget: projectBudget, spent: 5000, leaseIds: [] }));
    expect(project).toMatchObject({ recipient: 'admins', body: "Project checkout's budget of 50.00 EUR is spent for 2026-11 (50.00 EUR)." });
  });

  it('tells the user of a quota exceeded, with the lease it ended if any', () => {
    const quota = { name: 'minutesPerPeriod', limit: 600, current: 600, requested: 0 };
    expect(notificationsFor(appended('quota.exceeded', { userId: 'usr_bob', quota, leaseId: LEASE }))).toEqual([
      {
        recipient: 'usr_bob',
        kind: 'quota.exceeded',
        title: 'Quota reached: minutes this period',
        body: `Your plan allows 600 minutes this period and you have used 600; lease ${LEASE} was ended.`,
        ...leaseLink,
      },
    ]);
    const refused = { name: 'maxConcurrentDevices', limit: 2, current: 2, requested: 1 };
    expect(notificationsFor(appended('quota.exceeded', { userId: 'usr_bob', quota: refused, leaseId: null }))).toEqual([
      {
        recipient: 'usr_bob',
        kind: 'quota.exceeded',
        title: 'Quota reached: devices at once',
        body: 'A request was refused: your plan allows 2 devices at once; you had 2 and asked for 1.',
        link: null,
        subject: null,
      },
    ]);
  });

  it('tells every admin of an unreachable host', () => {
    const host = { id: 'hst_1', name: 'rack-2', address: '127.0.0.1:5037', type: 'adb_server' };
    expect(notificationsFor(appended('host.unreachable', { host, error: 'connect ECONNREFUSED 127.0.0.1:5037' }))).toEqual([
      {
        recipient: 'admins',
        kind: 'host.unreachable',
        title: 'Host rack-2 unreachable',
        body: 'Host rack-2 (adb_server at 127.0.0.1:5037) stopped answering: connect ECONNREFUSED 127.0.0.1:5037',
        link: '/v1/hosts/hst_1',
        subject: { type: 'host', id: 'hst_1' },
      },
    ]);
    expect(notificationsFor(appended('host.reachable', { host }))).toEqual([]);
  });

  it("tells a disabled webhook endpoint's owner why", () => {
    const endpoint = { id: 'whe_1', userId: 'usr_carol', url: 'https://hooks.example.com/in', scope: 'own', enabled: false };
    expect(notificationsFor(appended('webhook.endpoint_disabled', { endpoint, reason: 'gone' }))).toEqual([
      {
        recipient: 'usr_carol',
        kind: 'webhook.disabled',
        title: 'Webhook endpoint disabled',
        body: 'https://hooks.example.com/in answered 410 Gone, so no more events are sent to it.',
        link: '/v1/webhooks/whe_1',
        subject: { type: 'webhook_endpoint', id: 'whe_1' },
      },
    ]);
    const [failing] = notificationsFor(appended('webhook.endpoint_disabled', { endpoint, reason: 'failing' }));
    expect(failing!.body).toBe('https://hooks.example.com/in has failed every delivery for 5 days, so no more events are sent to it.');
  });

  it.each<EventType>(['user.created', 'lease.queued', 'lease.renewed', 'device.connected', 'app.install.succeeded', 'invoice.created'])(
    'notifies no one of %s',
    (type) => {
      expect(notificationsFor(appended(type, {}, 'usr_alice'))).toEqual([]);
    },
  );
});

describe('preferences by default', () => {
  it('put every kind in the inbox and mail only what asks for action soon', () => {
    const emailed = NOTIFICATION_KINDS.filter((kind) => defaultPreference(kind).email);
    expect(emailed).toEqual(['lease.expiring', 'budget.exhausted', 'webhook.disabled']);
    expect(NOTIFICATION_KINDS.every((kind) => defaultPreference(kind).inbox)).toBe(true);
  });
});
