import { callerOf } from '../../caller.js';
import type { Handlers } from '../../http/handler.js';
import { DEFAULT_PAGE_SIZE } from '../../pagination.js';
import type { InboxService } from './service.js';

export type InboxHandlers = Pick<
  Handlers,
  | 'listNotifications'
  | 'countUnreadNotifications'
  | 'getNotification'
  | 'markNotificationRead'
  | 'markNotificationUnread'
  | 'markAllNotificationsRead'
  | 'deleteNotification'
  | 'getNotificationPreferences'
  | 'updateNotificationPreferences'
>;

export function inboxHandlers(inbox: InboxService): InboxHandlers {
  return {
    listNotifications: async ({ query, ctx }) => {
      const page = await inbox.list(callerOf(ctx), {
        status: query.status,
        kinds: query.kind,
        cursor: query.cursor,
        limit: query.limit ?? DEFAULT_PAGE_SIZE,
      });
      return { status: 200, body: { data: page.data, nextCursor: page.nextCursor } };
    },
    countUnreadNotifications: async ({ ctx }) => ({
      status: 200,
      body: { unread: await inbox.unreadCount(callerOf(ctx)) },
    }),
    getNotification: async ({ params, ctx }) => ({
      status: 200,
      body: await inbox.get(callerOf(ctx), params.notificationId),
    }),
    markNotificationRead: async ({ params, ctx }) => ({
      status: 200,
      body: await inbox.markRead(callerOf(ctx), params.notificationId),
    }),
    markNotificationUnread: async ({ params, ctx }) => ({
      status: 200,
      body: await inbox.markUnread(callerOf(ctx), params.notificationId),
    }),
    markAllNotificationsRead: async ({ ctx }) => ({
      status: 200,
      body: { updated: await inbox.markAllRead(callerOf(ctx)) },
    }),
    deleteNotification: async ({ params, ctx }) => {
      await inbox.delete(callerOf(ctx), params.notificationId);
      return { status: 204, body: undefined };
    },
    getNotificationPreferences: async ({ ctx }) => ({
      status: 200,
      body: { preferences: await inbox.preferences(callerOf(ctx)) },
    }),
    updateNotificationPreferences: async ({ body, ctx }) => ({
      status: 200,
      body: { preferences: await inbox.updatePreferences(callerOf(ctx), body.preferences) },
    }),
  };
}
