import type { components } from '../generated/types.js';
import type { Principal } from '../http/handler.js';

type Schemas = components['schemas'];

/** Every event type of the contract's `Event` union. */
export type EventType = Schemas['Event']['type'];

export type UserChange = 'displayName' | 'role' | 'disabled' | 'password';

export type LoginFailureReason = 'unknown_user' | 'wrong_password' | 'user_disabled' | 'throttled';

export type LeaseReleaseReason =
  | 'released'
  | 'force_released'
  | 'cancelled'
  | 'timed_out'
  | 'host_removed'
  | 'user_disabled'
  | 'budget_exhausted'
  | 'quota_exhausted';

/** The `data` of each event type, as the contract's event schemas define it. */
interface EventDataByType {
  'user.created': { user: Schemas['UserSummary'] };
  'user.updated': { user: Schemas['UserSummary']; changes: UserChange[] };
  'user.deleted': { user: Schemas['UserSummary'] };
  'token.created': { token: Schemas['ApiTokenSummary'] };
  'token.revoked': { token: Schemas['ApiTokenSummary'] };
  'auth.login_succeeded': { sessionId: string };
  'auth.login_failed': { username: string; reason: LoginFailureReason; failedAttempts: number };
  'auth.logged_out': { sessionId: string };
  'auth.refresh_token_reused': { sessionId: string };
  'device.connected': { device: Schemas['DeviceSummary'] };
  'device.disconnected': { device: Schemas['DeviceSummary'] };
  'device.state_changed': { device: Schemas['DeviceSummary']; from: Schemas['DeviceState']; to: Schemas['DeviceState'] };
  'device.reset': { deviceId: string; leaseId: string; reset: Schemas['DeviceReset'] };
  'lease.queued': { lease: Schemas['LeaseSummary']; position: number };
  'lease.granted': { lease: Schemas['LeaseSummary']; deviceIds: string[]; queued?: boolean };
  'lease.renewed': { lease: Schemas['LeaseSummary'] };
  'lease.released': { lease: Schemas['LeaseSummary']; reason: LeaseReleaseReason };
  'lease.expired': { lease: Schemas['LeaseSummary'] };
  'lease.expiring': { lease: Schemas['LeaseSummary']; minutesLeft: number };
  'app.uploaded': { app: Schemas['AppSummary'] };
  'app.updated': { app: Schemas['AppSummary']; changes: 'shared'[] };
  'app.deleted': { app: Schemas['AppSummary'] };
  'app.install.started': { jobId: string; appId: string; deviceIds: string[] };
  'app.install.succeeded': { jobId: string; appId: string; deviceId: string };
  'app.install.failed': { jobId: string; appId: string; deviceId: string; reason: string };
  'plan.created': { plan: Schemas['PlanSummary'] };
  'plan.updated': { plan: Schemas['PlanSummary'] };
  'plan.deleted': { plan: Schemas['PlanSummary'] };
  'user.plan_assigned': { userId: string; planId: string; previousPlanId: string | null };
  'budget.created': { budget: Schemas['BudgetSummary'] };
  'budget.updated': { budget: Schemas['BudgetSummary'] };
  'budget.deleted': { budget: Schemas['BudgetSummary'] };
  'usage.threshold_reached': { budget: Schemas['BudgetSummary']; period: string; threshold: number; spent: number };
  'budget.exhausted': { budget: Schemas['BudgetSummary']; period: string; spent: number; leaseIds: string[] };
  'quota.exceeded': { userId: string; quota: Schemas['QuotaViolation']; leaseId: string | null };
  'invoice.created': { invoice: Schemas['InvoiceSummary'] };
  'invoice.adjusted': { invoice: Schemas['InvoiceSummary'] };
  'invoice.finalized': { invoice: Schemas['InvoiceSummary'] };
  'invoice.voided': { invoice: Schemas['InvoiceSummary'] };
  'host.unreachable': { host: Schemas['HostSummary']; error: string };
  'host.reachable': { host: Schemas['HostSummary'] };
  'webhook.endpoint_created': { endpoint: Schemas['WebhookEndpointSummary'] };
  'webhook.endpoint_updated': { endpoint: Schemas['WebhookEndpointSummary'] };
  'webhook.endpoint_deleted': { endpoint: Schemas['WebhookEndpointSummary'] };
  'webhook.endpoint_secret_rotated': { endpoint: Schemas['WebhookEndpointSummary'] };
  'webhook.endpoint_disabled': { endpoint: Schemas['WebhookEndpointSummary']; reason: 'gone' | 'failing' };
  'webhook.test': { endpointId: string; message: string };
  'user.email_verified': { userId: string };
}

export type EventData<T extends EventType> = EventDataByType[T];

export type Actor = { type: 'user'; id: string; username: string } | { type: 'system' } | { type: 'anonymous' };

export interface Subject {
  type: Schemas['EventSubject']['type'];
  id: string;
}

/** Who caused a change and in which request: stamped on the events the change appends. */
export interface Cause {
  actor: Actor;
  requestId: string | null;
}

export interface NewEvent<T extends EventType> {
  type: T;
  actor: Actor;
  subject: Subject | null;
  data: EventData<T>;
  requestId: string | null;
  occurredAt: Date;
}

export const systemCause: Cause = { actor: { type: 'system' }, requestId: null };

export function userActor(user: { id: string; username: string }): Actor {
  return { type: 'user', id: user.id, username: user.username };
}

export function principalActor(principal: Principal): Actor {
  return { type: 'user', id: principal.userId, username: principal.username };
}

/** An event as the notification outboxes see it, in the transaction that appends it. */
export interface AppendedEvent {
  id: string;
  type: EventType;
  occurredAt: string;
  actorId: string | null;
  subjectType: string | null;
  subjectId: string | null;
  audienceId: string | null;
  data: unknown;
  requestId: string | null;
}
