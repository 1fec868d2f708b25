import { callerOf, causeOf } from '../../caller.js';
import type { Handlers } from '../../http/handler.js';
import { DEFAULT_PAGE_SIZE } from '../../pagination.js';
import type { WebhookService } from './service.js';

export type WebhookHandlers = Pick<
  Handlers,
  | 'listWebhookEndpoints'
  | 'createWebhookEndpoint'
  | 'getWebhookEndpoint'
  | 'updateWebhookEndpoint'
  | 'deleteWebhookEndpoint'
  | 'rotateWebhookSecret'
  | 'listWebhookDeliveries'
  | 'getWebhookDelivery'
  | 'redeliverWebhook'
  | 'recoverWebhookDeliveries'
  | 'sendWebhookTestEvent'
>;

export function webhookHandlers(webhooks: WebhookService): WebhookHandlers {
  return {
    listWebhookEndpoints: async ({ query, ctx }) => ({
      status: 200,
      body: await webhooks.list(callerOf(ctx), { ...query, limit: query.limit ?? DEFAULT_PAGE_SIZE }),
    }),
    createWebhookEndpoint: async ({ body, ctx }) => ({
      status: 201,
      body: await webhooks.create(callerOf(ctx), body, causeOf(ctx)),
    }),
    getWebhookEndpoint: async ({ params, ctx }) => ({
      status: 200,
      body: await webhooks.get(callerOf(ctx), params.webhookId),
    }),
    updateWebhookEndpoint: async ({ params, body, ctx }) => ({
      status: 200,
      body: await webhooks.update(callerOf(ctx), params.webhookId, body, causeOf(ctx)),
    }),
    deleteWebhookEndpoint: async ({ params, ctx }) => {
      await webhooks.delete(callerOf(ctx), params.webhookId, causeOf(ctx));
      return { status: 204, body: undefined };
    },
    rotateWebhookSecret: async ({ params, ctx }) => ({
      status: 200,
      body: await webhooks.rotateSecret(callerOf(ctx), params.webhookId, causeOf(ctx)),
    }),
    listWebhookDeliveries: async ({ params, query, ctx }) => ({
      status: 200,
      body: await webhooks.listDeliveries(callerOf(ctx), params.webhookId, {
        status: query.status,
        eventTypes: query.eventType,
        since: query.since,
        cursor: query.cursor,
        limit: query.limit ?? DEFAULT_PAGE_SIZE,
      }),
    }),
    getWebhookDelivery: async ({ params, ctx }) => ({
      status: 200,
      body: await webhooks.getDelivery(callerOf(ctx), params.webhookId, params.eventId),
    }),
    redeliverWebhook: async ({ params, ctx }) => ({
      status: 202,
      body: await webhooks.redeliver(callerOf(ctx), params.webhookId, params.eventId),
    }),
    recoverWebhookDeliveries: async ({ params, body, ctx }) => ({
      status: 202,
      body: { requeued: await webhooks.recover(callerOf(ctx), params.webhookId, body.since) },
    }),
    sendWebhookTestEvent: async ({ params, body, ctx }) => ({
      status: 202,
      body: { eventId: await webhooks.sendTestEvent(callerOf(ctx), params.webhookId, body?.message, causeOf(ctx)) },
    }),
  };
}
