import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countRows, PASSWORD, startApi, uniqueUsername, type Api, type ApiResponse, type Caller } from './harness.js';

const BODY_LIMIT = 4096;

let api: Api;
let viewer: Caller;
let member: Caller;
let otherMember: Caller;

beforeAll(async () => {
  api = await startApi({ bodyLimitBytes: BODY_LIMIT });
  viewer = await api.addCaller('viewer');
  member = await api.addCaller('member');
  otherMember = await api.addCaller('member');
});

afterAll(async () => {
  await api.close();
});

/** Sends a request that must fail with `status` and `code` and leave every table's row count as it was. */
async function expectRefused(request: () => Promise<ApiResponse>, status: number, code: string): Promise<ApiResponse> {
  const before = await api.counts();
  const response = await request();
  expect({ status: response.status, code: response.body?.code }).toEqual({ status, code });
  expect(response.headers.get('x-request-id')).toBe(response.body.requestId);
  expect(await api.counts()).toEqual(before);
  return response;
}

const newUser = () => ({ username: uniqueUsername(), password: PASSWORD, role: 'member' });

describe('malformed requests', () => {
  it('refuses a body that is not JSON', async () => {
    await expectRefused(
      () => api.call('createUser', { token: api.admin.token, rawBody: '{"username": "eve",' }),
      400,
      'malformed_json',
    );
  });

  it('refuses wrong types, naming the field', async () => {
    const response = await expectRefused(
      () => api.call('createUser', { token: api.admin.token, body: { ...newUser(), role: 5 } }),
      400,
      'validation_failed',
    );
    expect(response.body.errors).toContainEqual(expect.objectContaining({ field: '/role' }));
    await expectRefused(
      () => api.call('createApiToken', { token: member.token, body: { name: 'ci', scopes: 'read' } }),
      400,
      'validation_failed',
    );
    await expectRefused(
      () =>
        api.call('updateUser', { token: api.admin.token, path: { userId: member.userId }, body: { disabled: 'yes' } }),
      400,
      'validation_failed',
    );
  });

  it('refuses unknown fields', async () => {
    const response = await expectRefused(
      () => api.call('createUser', { token: api.admin.token, body: { ...newUser(), isAdmin: true } }),
      400,
      'validation_failed',
    );
    expect(response.body.errors).toContainEqual(expect.objectContaining({ field: '/isAdmin' }));
    await expectRefused(
      () => api.call('updateMe', { token: member.token, body: { role: 'admin' } }),
      400,
      'validation_failed',
    );
  });

  it('refuses a body over the size limit', async () => {
    await expectRefused(
      () =>
        api.call('createUser', { token: api.admin.token, body: { ...newUser(), displayName: 'x'.repeat(BODY_LIMIT) } }),
      413,
      'payload_too_large',
    );
  });

  it('refuses a body that is not JSON by its content type', async () => {
    await expectRefused(
      () => api.call('createUser', { token: api.admin.token, rawBody: 'username=eve', contentType: 'text/plain' }),
      415,
      'unsupported_media_type',
    );
  });

  it('refuses a password change with a wrong current password', async () => {
    const response = await expectRefused(
      () =>
        api.call('updateMe', {
          token: member.token,
          body: { password: 'a-brand-new-password', currentPassword: 'not it' },
        }),
      400,
      'validation_failed',
    );
    expect(response.body.errors).toEqual([{ field: '/currentPassword', message: 'is incorrect' }]);
  });

  it('refuses a tampered cursor', async () => {
    await expectRefused(
      () => api.call('listEvents', { token: member.token, query: { cursor: 'bm90LWEtY3Vyc29y' } }),
      400,
      'invalid_cursor',
    );
    await expectRefused(
      () => api.call('listUsers', { token: api.admin.token, query: { cursor: 'e30' } }),
      400,
      'invalid_cursor',
    );
  });
});

describe('credentials', () => {
  it('refuses a missing or unsupported Authorization header', async () => {
    await expectRefused(() => api.call('listUsers'), 401, 'unauthenticated');
    await expectRefused(
      () => api.call('getMe', { headers: { authorization: `Basic ${Buffer.from('admin:x').toString('base64')}` } }),
      401,
      'unauthenticated',
    );
  });

  it('refuses tokens that were never issued', async () => {
    await expectRefused(() => api.call('getMe', { token: 'cpa_notarealtoken' }), 401, 'invalid_token');
    await expectRefused(() => api.call('getMe', { token: 'cpt_notarealtoken' }), 401, 'invalid_token');
    await expectRefused(() => api.call('getMe', { token: member.pair.refreshToken }), 401, 'invalid_token');
  });

  it('refuses an access token after logout', async () => {
    const pair = await api.login(member.username, PASSWORD);
    await api.call('logout', { body: { refreshToken: pair.refreshToken } });
    await expectRefused(() => api.call('getMe', { token: pair.accessToken }), 401, 'token_revoked');
    await expectRefused(
      () => api.call('refreshSession', { body: { refreshToken: pair.refreshToken } }),
      401,
      'invalid_refresh_token',
    );
  });

  it('refuses a revoked API token', async () => {
    const created = await api.call('createApiToken', {
      token: member.token,
      body: { name: 'short', scopes: ['read'] },
    });
    await api.call('revokeApiToken', { token: member.token, path: { tokenId: created.body.id } });
    await expectRefused(() => api.call('getMe', { token: created.body.secret }), 401, 'token_revoked');
  });

  it('refuses a reused refresh token', async () => {
    const pair = await api.login(member.username, PASSWORD);
    const rotated = await api.call('refreshSession', { body: { refreshToken: pair.refreshToken } });
    expect(rotated.status).toBe(200);
    await expectRefused(
      () => api.call('refreshSession', { body: { refreshToken: pair.refreshToken } }),
      401,
      'invalid_refresh_token',
    );
  });

  it('refuses wrong credentials with one code whether or not the user exists', async () => {
    const unknown = await api.call('login', { body: { username: 'nobody-at-all', password: PASSWORD } });
    const wrong = await api.call('login', { body: { username: otherMember.username, password: 'not the password' } });
    expect([unknown.status, unknown.body.code, unknown.body.detail]).toEqual([
      wrong.status,
      wrong.body.code,
      wrong.body.detail,
    ]);
    expect(wrong.body.code).toBe('invalid_credentials');
  });
});

describe('authorisation', () => {
  it('refuses a viewer calling an admin operation', async () => {
    await expectRefused(
      () => api.call('createUser', { token: viewer.token, body: newUser() }),
      403,
      'insufficient_role',
    );
    await expectRefused(() => api.call('listUsers', { token: viewer.token }), 403, 'insufficient_role');
  });

  it("refuses a member reading another member's tokens", async () => {
    const theirs = await api.call('createApiToken', {
      token: otherMember.token,
      body: { name: 'theirs', scopes: ['read'] },
    });
    await expectRefused(
      () => api.call('listApiTokens', { token: member.token, query: { userId: otherMember.userId } }),
      403,
      'insufficient_role',
    );
    await expectRefused(
      () => api.call('listApiTokens', { token: member.token, query: { allUsers: true } }),
      403,
      'insufficient_role',
    );
    await expectRefused(
      () => api.call('getApiToken', { token: member.token, path: { tokenId: theirs.body.id } }),
      404,
      'not_found',
    );
    await expectRefused(
      () => api.call('revokeApiToken', { token: member.token, path: { tokenId: theirs.body.id } }),
      404,
      'not_found',
    );
  });

  it('refuses token scopes above the role', async () => {
    await expectRefused(
      () => api.call('createApiToken', { token: viewer.token, body: { name: 'ci', scopes: ['write'] } }),
      403,
      'scope_exceeds_role',
    );
    await expectRefused(
      () => api.call('createApiToken', { token: member.token, body: { name: 'ci', scopes: ['admin'] } }),
      403,
      'scope_exceeds_role',
    );
  });

  it("refuses a disabled user's old tokens", async () => {
    const doomed = await api.addCaller('member');
    const apiToken = await api.call('createApiToken', { token: doomed.token, body: { name: 'ci', scopes: ['read'] } });
    await api.call('updateUser', { token: api.admin.token, path: { userId: doomed.userId }, body: { disabled: true } });
    await expectRefused(() => api.call('getMe', { token: doomed.token }), 401, 'user_disabled');
    await expectRefused(() => api.call('listApiTokens', { token: apiToken.body.secret }), 401, 'user_disabled');
    await expectRefused(
      () => api.call('refreshSession', { body: { refreshToken: doomed.pair.refreshToken } }),
      401,
      'user_disabled',
    );
  });
});

describe('conflicts', () => {
  it('refuses a duplicate username', async () => {
    await expectRefused(
      () => api.call('createUser', { token: api.admin.token, body: { ...newUser(), username: member.username } }),
      409,
      'username_taken',
    );
  });

  it('refuses to demote, disable or delete the last enabled admin', async () => {
    const self = { token: api.admin.token, path: { userId: api.admin.userId } };
    await expectRefused(() => api.call('updateUser', { ...self, body: { role: 'member' } }), 409, 'last_admin');
    await expectRefused(() => api.call('updateUser', { ...self, body: { disabled: true } }), 409, 'last_admin');
    await expectRefused(() => api.call('deleteUser', self), 409, 'last_admin');
  });

  it('refuses unknown ids as not_found', async () => {
    const missingUser = { token: api.admin.token, path: { userId: 'usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA' } };
    await expectRefused(() => api.call('getUser', missingUser), 404, 'not_found');
    await expectRefused(() => api.call('updateUser', { ...missingUser, body: { role: 'viewer' } }), 404, 'not_found');
    await expectRefused(() => api.call('deleteUser', missingUser), 404, 'not_found');
    await expectRefused(
      () => api.call('getEvent', { token: member.token, path: { eventId: 'evt_01JDX3N2R1F4H7K0M3P6S9V2YB' } }),
      404,
      'not_found',
    );
  });
});

describe('devices, leases and hosts', () => {
  const unknownDevice = { deviceId: 'dev_01JDX3N2Q8B7W6M4K9T5R1C0ZA' };

  it('refuses malformed lease requests', async () => {
    for (const body of [{ ttlSeconds: 29 }, { count: 0 }, { waitSeconds: 3601 }, { selector: { kind: 'phone' } }, { color: 'red' }]) {
      await expectRefused(() => api.call('createLease', { token: member.token, body }), 400, 'validation_failed');
    }
    await expectRefused(
      () => api.call('renewLease', { token: member.token, path: { leaseId: 'lse_01JDX3N2Q8B7W6M4K9T5R1C0ZA' }, body: { ttlSeconds: 10 } }),
      400,
      'validation_failed',
    );
  });

  it('refuses unknown leases, devices and hosts', async () => {
    const leaseId = 'lse_01JDX3N2Q8B7W6M4K9T5R1C0ZA';
    await expectRefused(() => api.call('getLease', { token: member.token, path: { leaseId } }), 404, 'lease_not_found');
    await expectRefused(() => api.call('releaseLease', { token: member.token, path: { leaseId } }), 404, 'lease_not_found');
    await expectRefused(() => api.call('getDevice', { token: viewer.token, path: unknownDevice }), 404, 'device_not_found');
    await expectRefused(
      () => api.call('runDeviceShell', { token: api.admin.token, path: unknownDevice, body: { command: 'id' } }),
      404,
      'device_not_found',
    );
    await expectRefused(
      () => api.call('getHost', { token: api.admin.token, path: { hostId: 'hst_01JDX3N2Q8B7W6M4K9T5R1C0ZA' } }),
      404,
      'host_not_found',
    );
  });

  it('refuses malformed device and host requests', async () => {
    // (Neither or both of command/argv may be checked by the handler, after the device: see devices-api.)
    for (const body of [{ command: '' }, { argv: [] }, { command: 'id', timeoutSeconds: 0 }]) {
      await expectRefused(
        () => api.call('runDeviceShell', { token: api.admin.token, path: unknownDevice, body }),
        400,
        'validation_failed',
      );
    }
    for (const body of [{ type: 'tap', x: -1, y: 0 }, { type: 'pinch' }, { type: 'keyevent', key: 'home; reboot' }]) {
      await expectRefused(
        () => api.call('sendDeviceInput', { token: api.admin.token, path: unknownDevice, body }),
        400,
        'validation_failed',
      );
    }
    for (const body of [{ type: 'adb_device', address: 'no-port' }, { type: 'virtual', address: '127.0.0.1:1' }]) {
      await expectRefused(() => api.call('createHost', { token: api.admin.token, body }), 400, 'validation_failed');
    }
  });
});

describe('billing', () => {
  const BILLING_TABLES = ['plans', 'budgets', 'budget_alerts', 'invoices', 'usage_records', 'billing_periods'] as const;
  const unknownInvoice = { invoiceId: 'inv_01JDX3N2Q8B7W6M4K9T5R1C0ZA' };

  // The leader closes the last month on its first check after the start: the counts then change only by requests.
  beforeAll(async () => {
    const deadline = Date.now() + 30_000;
    while ((await countRows(api.database, ['billing_periods'])).billing_periods === 0) {
      if (Date.now() > deadline) throw new Error('the leader did not close the last billing period');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  /** `expectRefused`, and no billing row written either. */
  async function expectBillingRefused(request: () => Promise<ApiResponse>, status: number, code: string): Promise<ApiResponse> {
    const before = await countRows(api.database, [...BILLING_TABLES]);
    const response = await expectRefused(request, status, code);
    expect(await countRows(api.database, [...BILLING_TABLES])).toEqual(before);
    return response;
  }

  const fields = (response: ApiResponse) => (response.body.errors ?? []).map((e: { field: string }) => e.field);

  it('refuses malformed plans, a taken name, and deleting a plan in use', async () => {
    const admin = api.admin.token;
    const unknown = await expectBillingRefused(() => api.call('createPlan', { token: admin, body: { name: 'Odd', currency: 'ABC' } }), 400, 'validation_failed');
    expect(fields(unknown)).toEqual(['/currency']);
    for (const body of [
      { name: 'Odd', currency: 'usd' },
      { name: '', currency: 'USD' },
      { name: 'Odd', currency: 'USD', monthlyFee: -1 },
      { name: 'Odd', currency: 'USD', prices: { 'not a class': 1 } },
      { name: 'Odd', currency: 'USD', quotas: { maxLeaseTtlSeconds: 10 } },
    ]) {
      await expectBillingRefused(() => api.call('createPlan', { token: admin, body }), 400, 'validation_failed');
    }
    const name = uniqueUsername('plan');
    const plan = await api.call('createPlan', { token: admin, body: { name, currency: 'USD' } });
    expect(plan.status).toBe(201);
    await expectBillingRefused(() => api.call('createPlan', { token: admin, body: { name, currency: 'EUR' } }), 409, 'plan_name_taken');
    const planId = plan.body.id as string;
    for (const body of [{}, { currency: 'EUR' }, { includedMinutes: -1 }]) {
      await expectBillingRefused(() => api.call('updatePlan', { token: admin, path: { planId }, body }), 400, 'validation_failed');
    }
    const plans = await api.call('listPlans', { token: admin });
    const defaultPlan = plans.body.data.find((p: { isDefault: boolean }) => p.isDefault);
    const keepDefault = await expectBillingRefused(
      () => api.call('updatePlan', { token: admin, path: { planId: defaultPlan.id }, body: { isDefault: false } }),
      400,
      'validation_failed',
    );
    expect(fields(keepDefault)).toEqual(['/isDefault']);
    await expectBillingRefused(() => api.call('deletePlan', { token: admin, path: { planId: defaultPlan.id } }), 409, 'plan_in_use');
    expect((await api.call('assignPlan', { token: admin, path: { userId: otherMember.userId }, body: { planId } })).status).toBe(200);
    await expectBillingRefused(() => api.call('deletePlan', { token: admin, path: { planId } }), 409, 'plan_in_use');
    const missing = 'pln_01JDX3N2Q8B7W6M4K9T5R1C0ZA';
    await expectBillingRefused(() => api.call('getPlan', { token: admin, path: { planId: missing } }), 404, 'plan_not_found');
    await expectBillingRefused(() => api.call('assignPlan', { token: admin, path: { userId: member.userId }, body: { planId: missing } }), 404, 'plan_not_found');
    await expectBillingRefused(() => api.call('assignPlan', { token: admin, path: { userId: member.userId }, body: { planId: 'free' } }), 400, 'validation_failed');
  });

  it('refuses malformed budgets and a second budget for the same user', async () => {
    const admin = api.admin.token;
    const user = { scope: 'user', userId: member.userId, currency: 'USD', amount: 1000 };
    for (const [body, field] of [
      [{ ...user, currency: 'ABC' }, '/currency'],
      [{ scope: 'user', currency: 'USD', amount: 1000 }, '/userId'],
      [{ scope: 'project', currency: 'USD', amount: 1000 }, '/project'],
      [{ ...user, project: 'web' }, '/project'],
      [{ ...user, userId: 'usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA' }, '/userId'],
    ] as const) {
      const refused = await expectBillingRefused(() => api.call('createBudget', { token: admin, body }), 400, 'validation_failed');
      expect(fields(refused)).toEqual([field]);
    }
    for (const body of [{ ...user, amount: -1 }, { ...user, thresholds: [] }, { ...user, thresholds: [101] }, { ...user, scope: 'team' }]) {
      await expectBillingRefused(() => api.call('createBudget', { token: admin, body }), 400, 'validation_failed');
    }
    const budget = await api.call('createBudget', { token: admin, body: user });
    expect(budget.status).toBe(201);
    await expectBillingRefused(() => api.call('createBudget', { token: admin, body: { ...user, amount: 5 } }), 409, 'budget_exists');
    const budgetId = budget.body.id as string;
    for (const body of [{}, { amount: -5 }, { currency: 'EUR' }, { thresholds: [50, 50] }, { thresholds: [0] }]) {
      await expectBillingRefused(() => api.call('updateBudget', { token: admin, path: { budgetId }, body }), 400, 'validation_failed');
    }
    // Thresholds in any order are kept ascending.
    const reordered = await api.call('updateBudget', { token: admin, path: { budgetId }, body: { thresholds: [80, 50] } });
    expect([reordered.status, reordered.body.thresholds]).toEqual([200, [50, 80]]);
    const missing = { budgetId: 'bdg_01JDX3N2Q8B7W6M4K9T5R1C0ZA' };
    await expectBillingRefused(() => api.call('getBudget', { token: admin, path: missing }), 404, 'budget_not_found');
    await expectBillingRefused(() => api.call('deleteBudget', { token: admin, path: missing }), 404, 'budget_not_found');
  });

  it('refuses malformed usage queries and estimates', async () => {
    for (const query of [{ period: '2026-13' }, { period: 'december' }]) {
      await expectBillingRefused(() => api.call('getUsage', { token: member.token, query }), 400, 'validation_failed');
    }
    const backwards = await expectBillingRefused(
      () => api.call('getUsageReport', { token: member.token, query: { from: '2026-12-07', to: '2026-12-01' } }),
      400,
      'validation_failed',
    );
    expect(fields(backwards)).toEqual(['from']);
    for (const query of [{ format: 'xml' }, { groupBy: ['colour'] }, { from: '2026-02-30' }] as Record<string, string | string[]>[]) {
      await expectBillingRefused(() => api.call('getUsageReport', { token: member.token, query }), 400, 'validation_failed');
    }
    await expectBillingRefused(() => api.call('listUsageRecords', { token: member.token, query: { cursor: 'e30' } }), 400, 'invalid_cursor');
    for (const body of [{ count: 0 }, { ttlSeconds: 29 }, { project: ' spaced' }]) {
      await expectBillingRefused(() => api.call('estimateLease', { token: member.token, body }), 400, 'validation_failed');
    }
    await expectRefused(() => api.call('createLease', { token: member.token, body: { project: 'a'.repeat(65) } }), 400, 'validation_failed');
  });

  it('refuses unknown invoices and malformed changes to them', async () => {
    const admin = api.admin.token;
    await expectBillingRefused(() => api.call('getInvoice', { token: member.token, path: unknownInvoice }), 404, 'invoice_not_found');
    await expectBillingRefused(() => api.call('downloadInvoice', { token: member.token, path: unknownInvoice }), 404, 'invoice_not_found');
    await expectBillingRefused(() => api.call('finalizeInvoice', { token: admin, path: unknownInvoice }), 404, 'invoice_not_found');
    await expectBillingRefused(() => api.call('voidInvoice', { token: admin, path: unknownInvoice, body: { reason: 'duplicate' } }), 404, 'invoice_not_found');
    await expectBillingRefused(
      () => api.call('addInvoiceAdjustment', { token: admin, path: unknownInvoice, body: { amount: -100, reason: 'credit' } }),
      404,
      'invoice_not_found',
    );
    for (const body of [{ amount: 0, reason: 'nothing' }, { amount: 100, reason: '' }, { amount: 1.5, reason: 'half' }, { amount: 10 ** 13, reason: 'huge' }]) {
      await expectBillingRefused(() => api.call('addInvoiceAdjustment', { token: admin, path: unknownInvoice, body }), 400, 'validation_failed');
    }
    await expectBillingRefused(() => api.call('voidInvoice', { token: admin, path: unknownInvoice, body: {} }), 400, 'validation_failed');
    await expectBillingRefused(() => api.call('downloadInvoice', { token: member.token, path: unknownInvoice, query: { format: 'docx' } }), 400, 'validation_failed');
    await expectBillingRefused(() => api.call('listInvoices', { token: member.token, query: { status: 'paid' } }), 400, 'validation_failed');
    await expectBillingRefused(() => api.call('previewInvoice', { token: admin, query: { userId: 'usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA' } }), 404, 'not_found');
  });
});
