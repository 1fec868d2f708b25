import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { emitCli, handwrittenCommands, listRows } from '../../openapi/generate/cli.js';
import type { GeneratedFile } from '../../openapi/generate/main.js';
import { kebab, loadSpec, type Operation, type Spec } from '../../openapi/generate/spec.js';
import type { OperationCommand } from '../src/base/operation-command.js';

const root = resolve(import.meta.dirname, '..', '..');

function fileFor(op: Operation): string {
  return `cli/src/generated/commands/${op.cli.id.split(' ').join('/')}.ts`;
}

describe('the CLI generator', () => {
  let spec: Spec;
  let files: GeneratedFile[];
  const temps: string[] = [];

  beforeAll(async () => {
    spec = loadSpec(join(root, 'openapi', 'cloudphone.yaml'));
    files = await emitCli.emit(spec, root);
  });

  afterEach(() => {
    for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('writes one command file per operation, as committed, plus the topics', () => {
    const paths = files.map((f) => f.path).sort();
    const generated = spec.operations.filter((op) => !op.cli.handwritten);
    expect(paths).toEqual([...generated.map(fileFor), 'cli/src/generated/topics.ts'].sort());
    for (const file of files) {
      expect(readFileSync(join(root, file.path), 'utf8')).toBe(file.content.endsWith('\n') ? file.content : `${file.content}\n`);
    }
  });

  it('generates no command for x-cli.handwritten operations', () => {
    const handwritten = spec.operations.filter((op) => op.cli.handwritten);
    expect(handwritten.map((op) => op.id)).toContain('pushDeviceFile');
    for (const op of handwritten) expect(files.map((f) => f.path)).not.toContain(fileFor(op));
  });

  it('gives every command its path parameters as arguments and its query and body fields as flags', async () => {
    for (const op of spec.operations.filter((o) => !o.cli.handwritten)) {
      const module = (await import(join(root, fileFor(op)))) as { default: typeof OperationCommand };
      const command = module.default;
      expect(command.operation.id).toBe(op.id);
      expect(command.hidden ?? false).toBe(Boolean(op.cli.hidden));
      expect(command.examples?.length).toBeGreaterThan(0);

      // Path order, except that a parameter the CLI can also take from a flag or the environment (optional) comes
      // after the required ones: oclif cannot have an optional argument before a required one.
      const inPath = op.parameters.filter((p) => p.in === 'path');
      const pathParams = [
        ...inPath.filter((p) => !(p.cliFlag || p.cliEnv)),
        ...inPath.filter((p) => p.cliFlag || p.cliEnv),
      ].map((p) => p.name);
      expect(Object.keys(command.args ?? {})).toEqual(pathParams.map(kebab));
      expect(Object.values(command.operation.path)).toEqual(pathParams);
      const fallbacks = op.parameters.filter((p) => p.in === 'path' && (p.cliFlag || p.cliEnv));
      for (const [name, arg] of Object.entries(command.args ?? {})) {
        const fallback = fallbacks.find((p) => kebab(p.name) === name);
        expect(arg.required, `${op.id} ${name}`).toBe(fallback === undefined);
        if (fallback?.cliFlag) expect(Object.keys(command.flags ?? {})).toContain(fallback.cliFlag);
        if (fallback?.cliChar) expect(command.flags?.[fallback.cliFlag!]?.char).toBe(fallback.cliChar);
        if (fallback) {
          const expected = { flag: fallback.cliFlag, ...(fallback.cliChar ? { char: fallback.cliChar } : {}), env: fallback.cliEnv };
          expect(command.operation.pathFallbacks?.[name]).toEqual(expected);
        }
      }

      const flags = Object.keys(command.flags ?? {});
      const pagination = op.paginated ? ['limit', 'cursor'] : [];
      for (const p of op.parameters.filter((p) => p.in === 'query' && !pagination.includes(p.name))) {
        expect(flags).toContain(kebab(p.name));
        expect(command.operation.query[kebab(p.name)]).toBe(p.name);
        // A required query parameter is a required flag: oclif refuses the command line (exit 2) before any request.
        expect(command.flags?.[kebab(p.name)]?.required ?? false, `${op.id} --${kebab(p.name)}`).toBe(p.required);
      }
      // Object-valued properties (labels) and lists of objects (notification preferences) have no flag: they come
      // through --data.
      const properties = Object.entries(
        (spec.resolve(op.body?.schema ?? {}).properties ?? {}) as Record<string, { type?: unknown; items?: { type?: unknown } }>,
      )
        .filter(([, schema]) => schema.type !== 'object' && !(schema.type === 'array' && schema.items?.type === 'object'))
        .map(([name]) => name);
      for (const property of properties) {
        expect(flags).toContain(kebab(property));
        expect(command.operation.body?.flags[kebab(property)]).toBe(property);
      }
      expect(flags.includes('data')).toBe(op.body !== null);
      expect(flags.includes('idempotency-key')).toBe(op.idempotent);
      expect(flags.includes('limit') && flags.includes('all')).toBe(op.paginated);
      expect(flags.includes('yes')).toBe(Boolean(op.cli.destructive));
      expect(command.operation.columns).toEqual(op.cli.columns ?? []);
      expect(command.operation.list).toEqual(listRows(spec, op));
    }
  });

  it('finds the rows of every list response in the contract', () => {
    const rows = (id: string) => listRows(spec, spec.operations.find((op) => op.id === id)!);
    expect(rows('listUsers')).toEqual({ field: 'data' });
    expect(rows('listHosts')).toEqual({ field: 'data' });
    expect(rows('listDevicePackages')).toEqual({ field: 'data' });
    expect(rows('listDeviceFiles')).toEqual({ field: 'entries' });
    expect(rows('getLease')).toBeNull();
    expect(rows('getAppIcon')).toBeNull();
    const getUser = spec.operations.find((op) => op.id === 'getUser')!;
    const array = { type: 'array', items: { type: 'object' } };
    const bare: Operation = { ...getUser, id: 'getUsers', success: { ...getUser.success, schemaRef: array } };
    expect(listRows(spec, bare)).toEqual({});
    const twoArrays = { type: 'object', properties: { data: array, more: array } };
    const ambiguous: Operation = { ...getUser, id: 'listThings', success: { ...getUser.success, schemaRef: twoArrays } };
    expect(() => listRows(spec, ambiguous)).toThrow('cli: listThings is a list');
  });

  it('puts required query flags in every example', async () => {
    const { default: DevicesLs } = (await import(join(root, 'cli/src/generated/commands/devices/ls.ts'))) as {
      default: typeof OperationCommand;
    };
    for (const example of DevicesLs.examples as { command: string }[]) expect(example.command).toContain('--path ');
  });

  it('types flags after their schemas', async () => {
    const { default: TokensCreate } = (await import(join(root, 'cli/src/generated/commands/tokens/create.ts'))) as {
      default: typeof OperationCommand;
    };
    const flags = TokensCreate.flags!;
    expect(flags.scopes).toMatchObject({ type: 'option', multiple: true, options: ['read', 'write', 'admin'], delimiter: ',' });
    expect(flags['expires-in-days']).toMatchObject({ type: 'option', min: 1, max: 3650 });
    expect(flags['expires-at']).toMatchObject({ helpValue: '<date-time>' });
    const { default: UsersUpdate } = (await import(join(root, 'cli/src/generated/commands/users/update.ts'))) as {
      default: typeof OperationCommand;
    };
    expect(UsersUpdate.flags!.disabled).toMatchObject({ type: 'boolean', allowNo: true });
    // A nullable string property's flag also takes the word null, for JSON null.
    const { default: PlansAssign } = (await import(join(root, 'cli/src/generated/commands/plans/assign.ts'))) as {
      default: typeof OperationCommand;
    };
    expect(PlansAssign.flags!['plan-id']).toMatchObject({ helpValue: '<value|null>' });
    expect(PlansAssign.operation.body?.nullable).toEqual(['plan-id']);
    expect(UsersUpdate.operation.body?.nullable).toBeUndefined();
    expect(UsersUpdate.examples).toContainEqual({
      description: "Change a user's role, display name, disabled flag or password.",
      command: '<%= config.bin %> users update usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA --role viewer --no-disabled',
    });
  });

  it('hides topics whose commands are all hidden', () => {
    const topics = files.find((f) => f.path.endsWith('topics.ts'))!.content;
    expect(topics).toContain("auth: { description: 'Log in, refresh and log out.");
    expect(topics).toMatch(/auth: \{[^}]*hidden: true/);
    expect(topics).toMatch(/users: \{ description: 'User accounts and roles \(admin only\)\.' \}/);
  });

  it('finds the handwritten commands', () => {
    const ids = [...handwrittenCommands(root).keys()].sort();
    expect(ids).toEqual([
      'apps download',
      'apps install',
      'apps upload',
      'devices connect',
      'devices input',
      'devices label',
      'devices logcat',
      'devices pull',
      'devices push',
      'devices screenshot',
      'devices shell',
      'events follow',
      'help',
      'inbox',
      'inbox read',
      'invoices download',
      'leases create',
      'login',
      'logout',
      'profiles list',
      'profiles use',
      'usage',
      'usage report',
      'webhooks listen',
    ]);
  });

  it('fails when a handwritten command has the id of a generated one', () => {
    const temp = mkdtempSync(join(tmpdir(), 'cloudphone-cli-generator-'));
    temps.push(temp);
    mkdirSync(join(temp, 'cli/src/commands/users'), { recursive: true });
    writeFileSync(join(temp, 'cli/src/commands/users/list.ts'), 'export default class {}\n');
    expect(() => emitCli.emit(spec, temp)).toThrow(
      'cli: the handwritten command cli/src/commands/users/list.ts has the id "users list" of the generated command for listUsers',
    );
  });

  it('fails when a parameter would shadow a flag the command already has', () => {
    const deleteUser = spec.operations.find((op) => op.id === 'deleteUser')!;
    const clash: Operation = {
      ...deleteUser,
      parameters: [
        ...deleteUser.parameters,
        { name: 'yes', in: 'query', required: false, description: '', schema: { type: 'boolean' }, example: true, explode: true },
      ],
    };
    expect(() => emitCli.emit({ ...spec, operations: [clash] }, root)).toThrow(
      'cli: deleteUser: query parameter yes would be --yes, which the command already has',
    );
  });
});
