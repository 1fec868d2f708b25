import { formatMoney } from '../../billing/money.js';
import type { AppendedEvent, EventData, EventType, LeaseReleaseReason } from '../../events/types.js';
import type { components } from '../../generated/types.js';

export type NotificationKind = components['schemas']['NotificationKind'];

/** Every kind, in the order the preferences list them. */
export const NOTIFICATION_KINDS: readonly NotificationKind[] = [
  'lease.granted',
  'lease.expiring',
  'lease.expired',
  'lease.ended',
  'install.failed',
  'device.offline',
  'budget.threshold',
  'budget.exhausted',
  'quota.exceeded',
  'host.unreachable',
  'webhook.disabled',
];

/** The kinds mailed unless the user turned it off: those that ask for action soon. */
const EMAILED_BY_DEFAULT: ReadonlySet<NotificationKind> = new Set(['lease.expiring', 'budget.exhausted', 'webhook.disabled']);

export function defaultPreference(kind: NotificationKind): { inbox: boolean; email: boolean } {
  return { inbox: true, email: EMAILED_BY_DEFAULT.has(kind) };
}

/** A notification before its recipients are resolved: one user, or every enabled admin. */
export interface NotificationDraft {
  recipient: string | 'admins';
  kind: NotificationKind;
  title: string;
  body: string;
  /** The API path of the subject. */
  link: string | null;
  subject: { type: string; id: string } | null;
}

/** The lease end reasons worth telling the holder of: the lease ended without them asking. */
const ENDED_BECAUSE: Partial<Record<LeaseReleaseReason, string>> = {
  force_released: 'an admin released it',
  host_removed: 'the host of its devices was removed',
  user_disabled: 'your account was disabled',
  budget_exhausted: 'the budget paying for it is spent',
  quota_exhausted: 'your minutes for this period are used up',
};

/**
 * Names an event carries only as ids, read by the outbox for the events that need them (`namesNeeded`): the app
 * and the device of an install.
 */
export interface EventNames {
  packageName?: string | undefined;
  device?: { serial: string; model: string | null } | undefined;
}

/** Whether the notifications of the event name things its data has only ids of. */
export function namesNeeded(event: AppendedEvent): boolean {
  return event.type === 'app.install.failed';
}

function dataOf<T extends EventType>(event: AppendedEvent, _type: T): EventData<T> {
  return event.data as EventData<T>;
}

function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

function leaseDraft(
  recipient: string,
  kind: NotificationKind,
  leaseId: string,
  title: string,
  body: string,
): NotificationDraft {
  return { recipient, kind, title, body, link: `/v1/leases/${leaseId}`, subject: { type: 'lease', id: leaseId } };
}

function deviceName(device: { serial: string; model: string | null }): string {
  return device.model === null ? device.serial : `${device.model} (${device.serial})`;
}

/** A budget's own user, or every admin for a project's. */
function budgetRecipient(budget: { scope: string; userId: string | null }): string {
  return budget.scope === 'user' && budget.userId !== null ? budget.userId : 'admins';
}

function budgetName(budget: { scope: string; project: string | null; amount: number; currency: string }): string {
  const owner = budget.scope === 'project' && budget.project !== null ? `project ${budget.project}'s` : 'your';
  return `${owner} budget of ${formatMoney(budget.amount, budget.currency)}`;
}

function capitalised(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

const QUOTA_NAMES: Record<string, string> = {
  maxConcurrentDevices: 'devices at once',
  maxLeaseTtlSeconds: 'lease length (seconds)',
  minutesPerPeriod: 'minutes this period',
};

/**
 * The notifications an event gives rise to, from the event alone: most types notify no one, and the caller learns
 * that without touching the database.
 */
export function notificationsFor(event: AppendedEvent, names: EventNames = {}): NotificationDraft[] {
  switch (event.type) {
    case 'lease.granted': {
      const { lease, deviceIds, queued } = dataOf(event, 'lease.granted');
      // A lease granted at once was answered in its own request; one that waited in the queue is news.
      if (queued !== true) return [];
      const devices = plural(deviceIds.length, 'device');
      return [
        leaseDraft(
          lease.userId,
          'lease.granted',
          lease.id,
          `Lease granted: your ${devices} ${deviceIds.length === 1 ? 'is' : 'are'} ready`,
          `Lease ${lease.id} waited in the queue and now holds ${devices}${lease.expiresAt === null ? '' : ` until ${lease.expiresAt}`}.`,
        ),
      ];
    }
    case 'lease.expiring': {
      const { lease, minutesLeft } = dataOf(event, 'lease.expiring');
      return [
        leaseDraft(
          lease.userId,
          'lease.expiring',
          lease.id,
          `Lease expiring in ${plural(minutesLeft, 'minute')}`,
          `Lease ${lease.id} (${plural(lease.count, 'device')}) expires at ${lease.expiresAt ?? 'its end'}. Renew it to keep the devices.`,
        ),
      ];
    }
    case 'lease.expired': {
      const { lease } = dataOf(event, 'lease.expired');
      return [
        leaseDraft(
          lease.userId,
          'lease.expired',
          lease.id,
          'Lease expired',
          `Lease ${lease.id} (${plural(lease.count, 'device')}) reached its end time; its devices are being reset.`,
        ),
      ];
    }
    case 'lease.released': {
      const { lease, reason } = dataOf(event, 'lease.released');
      const why = ENDED_BECAUSE[reason];
      if (why === undefined) return [];
      const what = lease.status === 'cancelled' ? 'queued lease was cancelled' : 'lease was ended';
      return [
        leaseDraft(
          lease.userId,
          'lease.ended',
          lease.id,
          `Lease ended: ${why}`,
          `Your ${what} (${lease.id}, ${plural(lease.count, 'device')}) because ${why}.`,
        ),
      ];
    }
    case 'app.install.failed': {
      if (event.audienceId === null) return [];
      const { jobId, appId, deviceId, reason } = dataOf(event, 'app.install.failed');
      const app = names.packageName ?? `app ${appId}`;
      const device = names.device === undefined ? `device ${deviceId}` : deviceName(names.device);
      return [
        {
          recipient: event.audienceId,
          kind: 'install.failed',
          title: `Install of ${app} failed`,
          body: `Installing ${app} on ${device} failed: ${reason}`,
          link: `/v1/install-jobs/${jobId}`,
          subject: { type: 'install_job', id: jobId },
        },
      ];
    }
    case 'device.disconnected':
    case 'device.state_changed': {
      if (event.audienceId === null) return [];
      const { device } = dataOf(event, 'device.disconnected');
      const to = event.type === 'device.state_changed' ? dataOf(event, 'device.state_changed').to : 'offline';
      if (to !== 'offline' && to !== 'unauthorized') return [];
      return [
        {
          recipient: event.audienceId,
          kind: 'device.offline',
          title: `Your leased device ${to === 'unauthorized' ? 'is unauthorized' : 'went offline'}`,
          body:
            to === 'unauthorized'
              ? `${deviceName(device)} no longer authorises this server's ADB key; it cannot be operated until it does.`
              : `${deviceName(device)} disconnected from host ${device.hostId}; operations on it fail until it is back.`,
          link: `/v1/devices/${device.id}`,
          subject: { type: 'device', id: device.id },
        },
      ];
    }
    case 'usage.threshold_reached': {
      const { budget, period, threshold, spent } = dataOf(event, 'usage.threshold_reached');
      return [
        {
          recipient: budgetRecipient(budget),
          kind: 'budget.threshold',
          title: `Budget ${threshold}% used`,
          body: `${capitalised(budgetName(budget))} has ${formatMoney(spent, budget.currency)} spent in ${period} (${threshold}%).`,
          link: `/v1/budgets/${budget.id}`,
          subject: { type: 'budget', id: budget.id },
        },
      ];
    }
    case 'budget.exhausted': {
      const { budget, period, spent, leaseIds } = dataOf(event, 'budget.exhausted');
      const ended = leaseIds.length === 0 ? '' : ` ${plural(leaseIds.length, 'lease')} it paid for ended.`;
      return [
        {
          recipient: budgetRecipient(budget),
          kind: 'budget.exhausted',
          title: 'Budget exhausted',
          body: `${capitalised(budgetName(budget))} is spent for ${period} (${formatMoney(spent, budget.currency)}).${ended}`,
          link: `/v1/budgets/${budget.id}`,
          subject: { type: 'budget', id: budget.id },
        },
      ];
    }
    case 'quota.exceeded': {
      const { userId, quota, leaseId } = dataOf(event, 'quota.exceeded');
      const name = QUOTA_NAMES[quota.name] ?? quota.name;
      return [
        {
          recipient: userId,
          kind: 'quota.exceeded',
          title: `Quota reached: ${name}`,
          body:
            leaseId === null
              ? `A request was refused: your plan allows ${quota.limit} ${name}; you had ${quota.current} and asked for ${quota.requested}.`
              : `Your plan allows ${quota.limit} ${name} and you have used ${quota.current}; lease ${leaseId} was ended.`,
          link: leaseId === null ? null : `/v1/leases/${leaseId}`,
          subject: leaseId === null ? null : { type: 'lease', id: leaseId },
        },
      ];
    }
    case 'host.unreachable': {
      const { host, error } = dataOf(event, 'host.unreachable');
      return [
        {
          recipient: 'admins',
          kind: 'host.unreachable',
          title: `Host ${host.name} unreachable`,
          body: `Host ${host.name} (${host.type} at ${host.address}) stopped answering: ${error}`,
          link: `/v1/hosts/${host.id}`,
          subject: { type: 'host', id: host.id },
        },
      ];
    }
    case 'webhook.endpoint_disabled': {
      const { endpoint, reason } = dataOf(event, 'webhook.endpoint_disabled');
      return [
        {
          recipient: endpoint.userId,
          kind: 'webhook.disabled',
          title: 'Webhook endpoint disabled',
          body:
            reason === 'gone'
              ? `${endpoint.url} answered 410 Gone, so no more events are sent to it.`
              : `${endpoint.url} has failed every delivery for 5 days, so no more events are sent to it.`,
          link: `/v1/webhooks/${endpoint.id}`,
          subject: { type: 'webhook_endpoint', id: endpoint.id },
        },
      ];
    }
    default:
      return [];
  }
}
