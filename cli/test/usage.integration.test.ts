import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadSpec } from '../../openapi/generate/spec.js';
import { assertBuilt, cliRoot, runCli, type Result, type RunOptions } from './fixtures/cli.js';
import { startTestServer, type TestServer } from './fixtures/server.js';

/*
 * How the built CLI treats its command line, against the real server: where a device command finds its device,
 * what a missing flag, a mistyped command and a refused login say, and which exit codes they end with.
 */

/** A device id of the right shape that no server has. */
const NO_DEVICE = 'dev_00000000000000000000000000';

interface ManifestCommand {
  args: Record<string, unknown>;
  flags: Record<string, { char?: string }>;
  strict?: boolean;
}

let server: TestServer;
let home: string;
let work: string;

function cli(args: string[], options: RunOptions = {}): Promise<Result> {
  return runCli(home, args, { ...options, env: { CLOUDPHONE_API_URL: server.url, CLOUDPHONE_TOKEN: server.adminToken, ...options.env } });
}

beforeAll(async () => {
  assertBuilt();
  home = mkdtempSync(join(tmpdir(), 'cloudphone-cli-usage-'));
  work = mkdtempSync(join(tmpdir(), 'cloudphone-cli-usage-files-'));
  server = await startTestServer('cli-usage');
}, 60_000);

afterAll(async () => {
  await server?.close();
  for (const dir of [home, work]) if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('device commands', () => {
  const manifest = JSON.parse(readFileSync(join(cliRoot, 'oclif.manifest.json'), 'utf8')) as { commands: Record<string, ManifestCommand> };
  const spec = loadSpec(resolve(cliRoot, '..', 'openapi', 'cloudphone.yaml'));
  const takesDevice = (ids: string[]) =>
    spec.operations.filter((op) => ids.includes(op.cli.id)).some((op) => op.parameters.some((p) => p.in === 'path' && p.name === 'deviceId'));
  // Every command of the devices topic works on one device, except those of operations without a deviceId in their
  // path (`devices list`); and any command, in any topic, of an operation whose path has a deviceId. A deviceId in the
  // query only filters (`usage records --device-id`): CLOUDPHONE_DEVICE, set for working on a device, must not narrow it.
  const deviceCommands = Object.keys(manifest.commands)
    .map((id) => id.replaceAll(':', ' '))
    .filter((id) => (id.startsWith('devices ') && (takesDevice([id]) || !spec.operations.some((op) => op.cli.id === id))) || takesDevice([id]))
    .sort();

  /** The rest of each command's line (besides the device), given the device as an argument (`[id]`) or not (`[]`). */
  const local = () => {
    const file = join(work, 'local.txt');
    writeFileSync(file, 'hello\n');
    return file;
  };
  const LINES: Record<string, (device: string[]) => string[]> = {
    'devices connect': (device) => device,
    'devices get': (device) => device,
    'devices input': (device) => [...device, 'tap', '1', '1'],
    'devices label': (device) => [...device, 'team=qa'],
    'devices logcat': (device) => device,
    'devices ls': (device) => [...device, '--path', '/sdcard'],
    'devices packages': (device) => device,
    'devices pull': (device) => [...device, '/sdcard/a.txt', join(work, 'pulled.txt')],
    'devices push': (device) => [...device, local(), '/sdcard/a.txt'],
    'devices reboot': (device) => device,
    'devices screenshot': (device) => [...device, '-o', join(work, 'screen.png')],
    'devices shell': (device) => [...device, '--', 'true'],
    'devices uninstall': (device) => ['com.example.app', ...device, '--yes'],
    'devices update': (device) => [...device, '--maintenance'],
  };

  test('every command with a device is known here, and takes it as an argument or -s/--device', () => {
    expect(Object.keys(LINES).sort()).toEqual(deviceCommands);
    for (const id of deviceCommands) {
      const command = manifest.commands[id.replaceAll(' ', ':')]!;
      expect(command.flags.device?.char, `${id} -s`).toBe('s');
      // A positional DEVICE, or free words whose first may be the device (devices input, devices label).
      const positional = Object.keys(command.args).some((name) => name === 'device' || name === 'device-id');
      expect(positional || command.strict === false, `${id} [DEVICE]`).toBe(true);
    }
  });

  test('without a device anywhere, generated and handwritten commands name the three ways (exit 2)', async () => {
    const ways = 'give it as the argument <device-id>, -s/--device or the CLOUDPHONE_DEVICE environment variable';
    for (const argv of [['devices', 'get'], ['devices', 'shell', '--', 'true']]) {
      expect(await cli(argv)).toMatchObject({ code: 2, stderr: `Error: Missing device-id: ${ways}\n` });
    }
  });

  const cases = Object.keys(LINES).flatMap((id) => ['the argument', '-s', 'CLOUDPHONE_DEVICE'].map((how) => ({ id, how })));
  test.concurrent.each(cases)('$id takes the device from $how', async ({ id, how }) => {
    const line = LINES[id]!;
    const words = id.split(' ');
    const argv =
      how === 'the argument' ? [...words, ...line([NO_DEVICE])] : how === '-s' ? [...words, '-s', NO_DEVICE, ...line([])] : [...words, ...line([])];
    const result = await cli(argv, { env: how === 'CLOUDPHONE_DEVICE' ? { CLOUDPHONE_DEVICE: NO_DEVICE } : {} });
    // The server looked the device up: the id reached it.
    expect(result.code, `${result.stdout}${result.stderr}`).toBe(1);
    expect(result.stderr).toContain('device_not_found');
  });
});

describe('the command line', () => {
  let counter: Server;
  let requests = 0;
  beforeAll(async () => {
    counter = createServer((request, response) => {
      requests++;
      response.writeHead(500).end();
    });
    await new Promise<void>((done) => counter.listen(0, '127.0.0.1', done));
  });
  afterAll(() => new Promise<void>((done) => counter.close(() => done())));

  test('a missing required flag is a usage error (exit 2), before any request', async () => {
    const url = `http://127.0.0.1:${(counter.address() as AddressInfo).port}`;
    const result = await cli(['devices', 'ls', NO_DEVICE], { env: { CLOUDPHONE_API_URL: url } });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/Missing required flag path/);
    expect(requests).toBe(0);
  });

  test('a mistyped command suggests the closest ones, with spaces (exit 2)', async () => {
    const typo = await cli(['devices', 'lst', NO_DEVICE]);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toBe('Error: "devices lst" is not a cloudphone command. Did you mean "devices ls" or "devices list"?\n');
    const topic = await cli(['devicse', 'list']);
    expect(topic).toMatchObject({ code: 2, stderr: expect.stringContaining('Did you mean "devices list"?') });
    const json = await cli(['leases', 'lsit', '--json']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'usage_error', title: expect.stringContaining('"leases list"') } });
    const nothing = await cli(['nonsense']);
    expect(nothing).toMatchObject({ code: 2, stderr: expect.stringContaining('Run `cloudphone help`') });
    expect(`${typo.stderr}${topic.stderr}${nothing.stderr}`).not.toMatch(/\w:\w/);
  });

  test('a refused login says why, without telling the user to log in (exit 4)', async () => {
    const result = await cli(['login', '--api-url', server.url, '--username', 'admin', '--password-stdin'], {
      input: 'not-the-password',
      env: { CLOUDPHONE_TOKEN: '' },
    });
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(/^Error: /);
    expect(result.stderr).not.toContain('cloudphone login');
    const badToken = await cli(['login', '--api-url', server.url, '--token', 'cpt_not-a-real-token'], { env: { CLOUDPHONE_TOKEN: '' } });
    expect(badToken.code).toBe(4);
    expect(badToken.stderr).not.toContain('cloudphone login');
    // Elsewhere, a 401 still says how to log in.
    const other = await cli(['whoami'], { env: { CLOUDPHONE_TOKEN: 'cpt_not-a-real-token' } });
    expect(other.code).toBe(4);
    expect(other.stderr).toContain('cloudphone login');
  });
});
