import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../src/lib/errors.js';
import { buildRequest, readData, readStdin, type DataSources, type OperationSpec } from '../src/lib/request.js';

const createUser: OperationSpec = {
  id: 'createUser',
  authenticated: true,
  path: {},
  query: {},
  body: {
    required: true,
    flags: { username: 'username', password: 'password', role: 'role', 'display-name': 'displayName' },
    requiredProperties: ['username', 'password', 'role'],
  },
  list: null,
  paginated: false,
  idempotent: true,
  destructive: false,
  columns: [],
};

const updateUser: OperationSpec = {
  ...createUser,
  id: 'updateUser',
  path: { 'user-id': 'userId' },
  body: { required: true, flags: { role: 'role', disabled: 'disabled' }, requiredProperties: [] },
};

const assignPlan: OperationSpec = {
  ...createUser,
  id: 'assignPlan',
  path: { 'user-id': 'userId' },
  body: { required: true, flags: { 'plan-id': 'planId' }, requiredProperties: ['planId'], nullable: ['plan-id'] },
};

const listEvents: OperationSpec = {
  ...createUser,
  id: 'listEvents',
  query: { type: 'type', 'subject-id': 'subjectId', order: 'order' },
  body: null,
};

function sources(files: Record<string, string> = {}, stdin = ''): DataSources {
  return {
    stdin: Readable.from([Buffer.from(stdin)]),
    readFile: async (path) => {
      if (!(path in files)) throw new Error(`ENOENT: no such file, open '${path}'`);
      return files[path]!;
    },
  };
}

describe('readData', () => {
  it('reads inline JSON, @file and - for standard input', async () => {
    expect(await readData('{"role":"admin"}', sources())).toEqual({ role: 'admin' });
    expect(await readData('@user.json', sources({ 'user.json': '{"username":"bob"}' }))).toEqual({ username: 'bob' });
    expect(await readData('-', sources({}, '{"disabled":true}\n'))).toEqual({ disabled: true });
  });

  it('reports unreadable files and invalid JSON as usage errors', async () => {
    await expect(readData('@missing.json', sources())).rejects.toThrow(/Cannot read --data file missing.json/);
    await expect(readData('{nope', sources())).rejects.toThrow(UsageError);
    await expect(readData('@bad.json', sources({ 'bad.json': 'x' }))).rejects.toThrow(/bad.json is not valid JSON/);
    await expect(readData('-', sources({}, ''))).rejects.toThrow(/standard input is not valid JSON/);
  });
});

describe('readStdin', () => {
  it('drops one trailing newline only', async () => {
    expect(await readStdin(Readable.from([Buffer.from('pa ss\n')]))).toBe('pa ss');
    expect(await readStdin(Readable.from([Buffer.from('pass\r\n')]))).toBe('pass');
    expect(await readStdin(Readable.from([Buffer.from('pass\n\n')]))).toBe('pass\n');
  });
});

describe('buildRequest', () => {
  it('maps arguments to path parameters and set flags to query parameters', () => {
    expect(buildRequest(listEvents, {}, { type: ['user.*'], order: 'desc', 'subject-id': undefined })).toEqual({
      query: { type: ['user.*'], order: 'desc' },
    });
    expect(buildRequest({ ...listEvents, path: { 'event-id': 'eventId' }, query: {} }, { 'event-id': 'evt_1' }, {})).toEqual({
      path: { eventId: 'evt_1' },
    });
  });

  it('builds the body from flags', () => {
    const flags = { username: 'bob', password: 'long-enough-password', role: 'member', 'display-name': 'Bob' };
    expect(buildRequest(createUser, {}, flags).body).toEqual({
      username: 'bob',
      password: 'long-enough-password',
      role: 'member',
      displayName: 'Bob',
    });
  });

  it('lets flags override the fields of --data', () => {
    const data = { username: 'bob', password: 'long-enough-password', role: 'viewer', displayName: 'From data' };
    expect(buildRequest(createUser, {}, { role: 'admin' }, data).body).toEqual({ ...data, role: 'admin' });
    expect(buildRequest(updateUser, { 'user-id': 'usr_1' }, { disabled: false }, { role: 'viewer' })).toEqual({
      path: { userId: 'usr_1' },
      body: { role: 'viewer', disabled: false },
    });
  });

  it('names the missing required fields by their flags', () => {
    expect(() => buildRequest(createUser, {}, { username: 'bob' })).toThrow(
      'Missing --password, --role (give them as flags or in --data)',
    );
    expect(() => buildRequest(createUser, {}, {}, { username: 'bob', password: 'long-enough-password' })).toThrow(
      'Missing --role (give it as flags or in --data)',
    );
  });

  it('asks for a body when a required one is missing entirely', () => {
    expect(() => buildRequest(updateUser, { 'user-id': 'usr_1' }, {})).toThrow(
      'This command needs a request body: give --role, --disabled or --data',
    );
  });

  it('sends null for the word null in the flag of a nullable property only', () => {
    expect(buildRequest(assignPlan, { 'user-id': 'usr_1' }, { 'plan-id': 'null' }).body).toEqual({ planId: null });
    expect(buildRequest(assignPlan, { 'user-id': 'usr_1' }, { 'plan-id': 'pln_1' }).body).toEqual({ planId: 'pln_1' });
    expect(buildRequest(createUser, {}, { username: 'null', password: 'long-enough-password', role: 'member' }).body).toMatchObject({
      username: 'null',
    });
  });

  it('rejects a non-object --data combined with body flags', () => {
    expect(() => buildRequest(updateUser, { 'user-id': 'usr_1' }, { role: 'admin' }, ['x'])).toThrow(UsageError);
  });
});
