import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loginCommand } from '../../src/cli.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const url = 'http://127.0.0.1:8080';

describe('the login hint', () => {
  it('is npx cloudphone from the checkout', () => {
    expect(loginCommand(url, 'admin', { cwd: root })).toBe(`npx cloudphone login --api-url ${url} --username admin`);
  });

  it('goes to the checkout first from elsewhere', () => {
    expect(loginCommand(url, 'admin', { cwd: tmpdir() })).toBe(
      `cd ${root.replace(/\/$/, '')} && npx cloudphone login --api-url ${url} --username admin`,
    );
  });

  it('is plain cloudphone for a server installed without the CLI beside it', () => {
    const alone = mkdtempSync(join(tmpdir(), 'cloudphone-server-alone-'));
    try {
      expect(loginCommand(url, 'admin', { cwd: alone, serverDir: alone })).toBe(
        `cloudphone login --api-url ${url} --username admin`,
      );
    } finally {
      rmSync(alone, { recursive: true, force: true });
    }
  });
});
