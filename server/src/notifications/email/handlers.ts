import { callerOf } from '../../caller.js';
import type { Handlers } from '../../http/handler.js';
import type { EmailService } from './service.js';
import { escapeHtml } from './templates.js';

export type EmailHandlers = Pick<Handlers, 'getMyEmail' | 'setMyEmail' | 'deleteMyEmail' | 'verifyEmail'>;

function verifiedPage(email: string): Buffer {
  return Buffer.from(
    [
      '<!doctype html>',
      '<html><head><meta charset="utf-8"><title>Email verified</title></head>',
      '<body style="font-family: sans-serif">',
      `<p>${escapeHtml(email)} is verified: cloudphone notifications you chose to get by email go to it.</p>`,
      '</body></html>',
      '',
    ].join('\n'),
    'utf8',
  );
}

export function emailHandlers(emails: EmailService): EmailHandlers {
  return {
    getMyEmail: async ({ ctx }) => ({ status: 200, body: await emails.get(callerOf(ctx)) }),
    setMyEmail: async ({ body, ctx }) => ({ status: 202, body: await emails.set(callerOf(ctx), body.email) }),
    deleteMyEmail: async ({ ctx }) => {
      await emails.delete(callerOf(ctx));
      return { status: 204, body: undefined };
    },
    verifyEmail: async ({ query, ctx }) => ({
      status: 200,
      body: verifiedPage(await emails.verify(query.token, ctx.requestId)),
      // The page's address holds the token: kept out of caches and of the Referer of anything it leads to.
      headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' },
    }),
  };
}
