import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generate } from '../generate/main.js';
import { loadSpec } from '../generate/spec.js';
import { contractRoot, copyContract } from './contract-copy.js';

const spec = loadSpec(contractRoot);
const byId = new Map(spec.operations.map((op) => [op.id, op]));

describe('the operation model', () => {
  it('derives SDK methods and CLI ids from tags and operationIds, honouring x-cli', () => {
    expect(byId.get('listUsers')).toMatchObject({ sdk: { namespace: 'users', method: 'list' }, cli: { id: 'users list' } });
    expect(byId.get('revokeApiToken')).toMatchObject({ sdk: { namespace: 'tokens', method: 'revoke' }, cli: { id: 'tokens revoke' } });
    expect(byId.get('getMe')).toMatchObject({ sdk: { namespace: 'me', method: 'get' }, cli: { id: 'whoami' } });
    expect(byId.get('login')?.cli.hidden).toBe(true);
  });

  it('marks paginated, idempotent and public operations from the contract alone', () => {
    const flags = (id: string) => {
      const op = byId.get(id)!;
      return { paginated: op.paginated, idempotent: op.idempotent, public: op.access === null };
    };
    expect(flags('listEvents')).toEqual({ paginated: true, idempotent: false, public: false });
    expect(flags('createUser')).toEqual({ paginated: false, idempotent: true, public: false });
    expect(flags('login')).toEqual({ paginated: false, idempotent: false, public: true });
    expect(byId.get('deleteUser')?.success.status).toBe(204);
    expect(byId.get('getUser')?.access).toEqual({ role: 'admin', scope: 'read' });
  });

  it('merges path-level parameters into each operation', () => {
    expect(byId.get('deleteUser')?.parameters.map((p) => `${p.in}:${p.name}`)).toEqual(['path:userId']);
  });

  it('models binary bodies and responses, keeping their content types', () => {
    const push = byId.get('pushDeviceFile')!;
    expect(push.body).toMatchObject({ contentType: 'application/octet-stream', binary: true, required: true });
    expect(push.success).toMatchObject({ status: 201, contentType: 'application/json', binary: false });
    expect(byId.get('pullDeviceFile')!.success).toMatchObject({ status: 200, contentType: 'application/octet-stream', binary: true });
    expect(byId.get('takeDeviceScreenshot')!.success).toMatchObject({ contentType: 'image/png', binary: true });
    expect(byId.get('createUser')!.body?.binary).toBe(false);
    expect(byId.get('getUser')!.success.binary).toBe(false);
  });

  it('models WebSocket operations with a 101 success', () => {
    const shell = byId.get('openDeviceShell')!;
    expect(shell.websocket).toBe(true);
    expect(shell.success).toMatchObject({ status: 101, contentType: null, binary: false });
    expect(shell.errorStatuses).toEqual(expect.arrayContaining([401, 403, 404, 409]));
    expect(byId.get('getDevice')!.websocket).toBe(false);
    expect(spec.operations.filter((op) => op.websocket).map((op) => op.id).sort()).toEqual([
      'followDeviceLogcat',
      'openDeviceAdbTunnel',
      'openDeviceShell',
      'streamEventsSocket',
    ]);
  });

  it('reads x-cli.handwritten and the parameter-level x-cli-flag / x-cli-env', () => {
    expect(byId.get('runDeviceShell')!.cli).toMatchObject({ handwritten: true, id: 'devices shell' });
    expect(byId.get('listDeviceFiles')!.cli).toMatchObject({ id: 'devices ls' });
    expect(byId.get('listDeviceFiles')!.cli.handwritten).toBeUndefined();
    const device = byId.get('getDevice')!.parameters.find((p) => p.name === 'deviceId')!;
    expect(device).toMatchObject({ in: 'path', cliFlag: 'device', cliEnv: 'CLOUDPHONE_DEVICE' });
    expect(byId.get('getUser')!.parameters[0]).not.toHaveProperty('cliFlag');
  });

  it('rejects a WebSocket operation without a 101 response, or with a 2xx', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cloudphone-spec-'));
    try {
      const get = copyContract(join(dir, 'get'), {
        'domains/devices.yaml': (text) => text.replace('operationId: getDevice\n', 'operationId: getDevice\n      x-websocket: true\n'),
      });
      expect(() => loadSpec(get)).toThrow(/getDevice \(x-websocket\) has no 101 response/);
      const both = "'101':\n          description: x\n        '200':\n          description: Switching Protocols; ADB transport";
      const tunnel = copyContract(join(dir, 'both'), {
        'domains/devices.yaml': (text) => text.replace("'101':\n          description: Switching Protocols; ADB transport", both),
      });
      expect(() => loadSpec(tunnel)).toThrow(/openDeviceAdbTunnel \(x-websocket\) must not have a 2xx response/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects two operations that map to the same SDK method', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cloudphone-spec-'));
    try {
      const root = copyContract(dir, {
        'domains/users.yaml': (text) => text.replace('operationId: getUser', 'operationId: getUser\n      x-sdk-method: list'),
      });
      expect(() => loadSpec(root)).toThrow(/both map to sdk users\.list/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('generate', () => {
  let root: string | undefined;
  afterEach(() => {
    if (root) rmSync(root, { recursive: true, force: true });
    root = undefined;
  });

  function tree(): string {
    root = mkdtempSync(join(tmpdir(), 'cloudphone-gen-'));
    copyContract(join(root, 'openapi'));
    return root;
  }

  it('writes every file, then finds nothing stale', async () => {
    const dir = tree();
    const first = await generate(dir, { check: false });
    expect(first.stale).toHaveLength(first.files);
    expect(first.stale.every((s) => s.startsWith('missing '))).toBe(true);
    expect(await generate(dir, { check: true })).toEqual({ files: first.files, stale: [] });
  });

  it('finds every generated file stale after a change in a domain file of the contract', async () => {
    const dir = tree();
    const first = await generate(dir, { check: false });
    const hosts = join(dir, 'openapi', 'domains', 'hosts.yaml');
    writeFileSync(hosts, readFileSync(hosts, 'utf8').replace('summary: List device hosts', 'summary: List the device hosts'));
    const checked = await generate(dir, { check: true });
    expect(checked.stale).toHaveLength(first.files);
    expect(checked.stale).toContain('differs sdk/src/generated/operations.ts');
  });

  it('reports a hand-edited generated file and an extra file in a generated folder, and repairs both', async () => {
    const dir = tree();
    await generate(dir, { check: false });
    const ops = join(dir, 'server', 'src', 'generated', 'operations.ts');
    writeFileSync(ops, `${readFileSync(ops, 'utf8')}// edited\n`);
    writeFileSync(join(dir, 'server', 'src', 'generated', 'leftover.ts'), 'export {};\n');
    const checked = await generate(dir, { check: true });
    expect(checked.stale.sort()).toEqual(['differs server/src/generated/operations.ts', 'extra server/src/generated/leftover.ts']);
    await generate(dir, { check: false });
    expect((await generate(dir, { check: true })).stale).toEqual([]);
  });

  it('marks every generated file DO NOT EDIT with the contract hash', async () => {
    const dir = tree();
    await generate(dir, { check: false });
    const head = readFileSync(join(dir, 'server', 'src', 'generated', 'types.ts'), 'utf8').split('\n')[0];
    expect(head).toContain('DO NOT EDIT');
    expect(head).toContain(spec.hash.slice(0, 16));
  });
});
