import { callerOf } from '../caller.js';
import type { Handlers } from '../http/handler.js';
import { formFileName } from '../http/multipart.js';
import { DEFAULT_PAGE_SIZE } from '../pagination.js';
import type { InstallService } from './install.js';
import type { AppService } from './service.js';

export type AppHandlers = Pick<
  Handlers,
  | 'uploadApp'
  | 'createAppFromHash'
  | 'listApps'
  | 'getApp'
  | 'updateApp'
  | 'deleteApp'
  | 'downloadApp'
  | 'getAppIcon'
  | 'installApp'
  | 'listInstallJobs'
  | 'getInstallJob'
  | 'uninstallDevicePackage'
>;

function contentDisposition(name: string): string {
  return `attachment; filename="${name.replace(/["\\\r\n]/g, '_')}"`;
}

export function appHandlers(apps: AppService, installs: InstallService): AppHandlers {
  return {
    uploadApp: async ({ query, body, ctx }) => {
      const { status, app } = await apps.upload(
        callerOf(ctx),
        body,
        { fileName: query.fileName ?? formFileName(body), shared: query.shared },
        ctx.requestId,
      );
      return { status, body: app };
    },
    createAppFromHash: async ({ body, ctx }) => {
      const { status, app } = await apps.fromHash(callerOf(ctx), body, ctx.requestId);
      return { status, body: app };
    },
    listApps: async ({ query, ctx }) => ({
      status: 200,
      body: await apps.list(callerOf(ctx), { ...query, limit: query.limit ?? DEFAULT_PAGE_SIZE }),
    }),
    getApp: async ({ params, ctx }) => ({ status: 200, body: await apps.get(callerOf(ctx), params.appId) }),
    updateApp: async ({ params, body, ctx }) => ({
      status: 200,
      body: await apps.update(callerOf(ctx), params.appId, body, ctx.requestId),
    }),
    deleteApp: async ({ params, ctx }) => {
      await apps.delete(callerOf(ctx), params.appId, ctx.requestId);
      return { status: 204, body: undefined };
    },
    downloadApp: async ({ params, headers, ctx }) => {
      const download = await apps.download(callerOf(ctx), params.appId, headers.Range);
      const common = {
        'content-length': String(download.size),
        'content-disposition': contentDisposition(download.fileName),
        'accept-ranges': 'bytes',
      };
      if (!download.partial) return { status: 200, body: download.stream, headers: common };
      return {
        status: 206,
        body: download.stream,
        headers: { ...common, 'content-range': `bytes ${download.start}-${download.end}/${download.total}` },
      };
    },
    getAppIcon: async ({ params, ctx }) => ({
      status: 200,
      body: await apps.icon(callerOf(ctx), params.appId),
      headers: { 'cache-control': 'private, max-age=86400' },
    }),
    installApp: async ({ params, body, ctx }) => ({
      status: 202,
      body: await installs.install(callerOf(ctx), params.appId, body, ctx.requestId),
    }),
    listInstallJobs: async ({ query, ctx }) => ({
      status: 200,
      body: await installs.list(callerOf(ctx), { ...query, limit: query.limit ?? DEFAULT_PAGE_SIZE }),
    }),
    getInstallJob: async ({ params, query, ctx }) => ({
      status: 200,
      body: await installs.get(callerOf(ctx), params.jobId, { waitSeconds: query.waitSeconds }),
    }),
    uninstallDevicePackage: async ({ params, ctx }) => {
      await installs.uninstall(callerOf(ctx), params.deviceId, params.packageName);
      return { status: 204, body: undefined };
    },
  };
}
