import { callerOf, causeOf } from '../caller.js';
import type { Handlers } from '../http/handler.js';
import { DEFAULT_PAGE_SIZE } from '../pagination.js';
import type { BudgetService } from './budgets.js';
import { invoiceCsv, invoicePdf, usageReportCsv } from './documents.js';
import type { InvoiceService } from './invoices.js';
import type { PlanService } from './plans.js';
import { toInvoice } from './view.js';
import type { UsageService } from './usage.js';

export type BillingHandlers = Pick<
  Handlers,
  | 'listPlans'
  | 'createPlan'
  | 'getPlan'
  | 'updatePlan'
  | 'deletePlan'
  | 'getUserPlan'
  | 'assignPlan'
  | 'listBudgets'
  | 'createBudget'
  | 'getBudget'
  | 'updateBudget'
  | 'deleteBudget'
  | 'getUsage'
  | 'listUsageRecords'
  | 'getUsageReport'
  | 'estimateLease'
  | 'listInvoices'
  | 'getInvoice'
  | 'previewInvoice'
  | 'addInvoiceAdjustment'
  | 'finalizeInvoice'
  | 'voidInvoice'
  | 'downloadInvoice'
>;

export interface BillingServices {
  plans: PlanService;
  budgets: BudgetService;
  usage: UsageService;
  invoices: InvoiceService;
  /** The billing time zone, for the dates documents show. */
  timeZone: string;
}

function attachment(name: string): string {
  return `attachment; filename="${name}"`;
}

export function billingHandlers({ plans, budgets, usage, invoices, timeZone }: BillingServices): BillingHandlers {
  return {
    listPlans: async ({ query }) => ({ status: 200, body: await plans.list({ ...query, limit: query.limit ?? DEFAULT_PAGE_SIZE }) }),
    createPlan: async ({ body, ctx }) => ({ status: 201, body: await plans.create(body, causeOf(ctx)) }),
    getPlan: async ({ params, ctx }) => ({ status: 200, body: await plans.visible(callerOf(ctx), params.planId) }),
    updatePlan: async ({ params, body, ctx }) => ({ status: 200, body: await plans.update(params.planId, body, causeOf(ctx)) }),
    deletePlan: async ({ params, ctx }) => {
      await plans.delete(params.planId, causeOf(ctx));
      return { status: 204, body: undefined };
    },
    getUserPlan: async ({ params, ctx }) => ({ status: 200, body: await plans.ofVisibleUser(callerOf(ctx), params.userId) }),
    assignPlan: async ({ params, body, ctx }) => ({
      status: 200,
      body: await plans.assign(params.userId, body.planId, causeOf(ctx)),
    }),
    listBudgets: async ({ query, ctx }) => ({
      status: 200,
      body: await budgets.list(callerOf(ctx), { ...query, limit: query.limit ?? DEFAULT_PAGE_SIZE }),
    }),
    createBudget: async ({ body, ctx }) => ({ status: 201, body: await budgets.create(body, causeOf(ctx)) }),
    getBudget: async ({ params, ctx }) => ({ status: 200, body: await budgets.get(callerOf(ctx), params.budgetId) }),
    updateBudget: async ({ params, body, ctx }) => ({
      status: 200,
      body: await budgets.update(params.budgetId, body, causeOf(ctx)),
    }),
    deleteBudget: async ({ params, ctx }) => {
      await budgets.delete(params.budgetId, causeOf(ctx));
      return { status: 204, body: undefined };
    },
    getUsage: async ({ query, ctx }) => ({ status: 200, body: await usage.summary(callerOf(ctx), query) }),
    listUsageRecords: async ({ query, ctx }) => ({
      status: 200,
      body: await usage.records(callerOf(ctx), { ...query, limit: query.limit ?? DEFAULT_PAGE_SIZE }),
    }),
    getUsageReport: async ({ query, ctx }) => {
      const report = await usage.report(callerOf(ctx), query);
      if (query.format !== 'csv') return { status: 200, body: report };
      return {
        status: 200,
        body: Buffer.from(usageReportCsv(report), 'utf8'),
        headers: {
          'content-type': 'text/csv; charset=utf-8',
          'content-disposition': attachment(`usage-${report.from}-${report.to}.csv`),
        },
      };
    },
    estimateLease: async ({ body, ctx }) => ({ status: 200, body: await usage.estimate(callerOf(ctx), body ?? {}) }),
    listInvoices: async ({ query, ctx }) => ({
      status: 200,
      body: await invoices.list(callerOf(ctx), { ...query, limit: query.limit ?? DEFAULT_PAGE_SIZE }),
    }),
    getInvoice: async ({ params, ctx }) => ({ status: 200, body: await invoices.get(callerOf(ctx), params.invoiceId) }),
    previewInvoice: async ({ query, ctx }) => ({ status: 200, body: await invoices.preview(callerOf(ctx), query.userId) }),
    addInvoiceAdjustment: async ({ params, body, ctx }) => ({
      status: 200,
      body: await invoices.adjust(params.invoiceId, body, callerOf(ctx), causeOf(ctx)),
    }),
    finalizeInvoice: async ({ params, ctx }) => ({ status: 200, body: await invoices.finalize(params.invoiceId, causeOf(ctx)) }),
    voidInvoice: async ({ params, body, ctx }) => ({
      status: 200,
      body: await invoices.void(params.invoiceId, body.reason, causeOf(ctx)),
    }),
    downloadInvoice: async ({ params, query, ctx }) => {
      const invoice = toInvoice(await invoices.row(callerOf(ctx), params.invoiceId));
      const document = { ...invoice, timeZone };
      const name = invoice.number === null ? `invoice-${invoice.id}` : `invoice-${invoice.number}`;
      if (query.format === 'csv') {
        const body = Buffer.from(invoiceCsv(document), 'utf8');
        return {
          status: 200,
          body,
          headers: {
            'content-type': 'text/csv; charset=utf-8',
            'content-length': String(body.length),
            'content-disposition': attachment(`${name}.csv`),
          },
        };
      }
      const body = await invoicePdf(document);
      const headers: Record<string, string> = {
        'content-length': String(body.length),
        'content-disposition': attachment(`${name}.pdf`),
      };
      return { status: 200, body, headers };
    },
  };
}
