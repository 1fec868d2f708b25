import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('start-up cost', () => {
  it('does not load undici or ws on import, and shares one keep-alive Agent across derived clients', async () => {
    const fixture = fileURLToPath(new URL('./fixtures/lazy-undici.ts', import.meta.url));
    const { stdout } = await run(process.execPath, ['--import', 'tsx', fixture], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
    });
    const result = JSON.parse(stdout) as Record<string, unknown>;
    expect(result).toEqual({
      loadedAfterImport: false,
      wsLoadedAfterImport: false,
      loadedAfterRequest: true,
      connections: 1,
      responses: [
        { path: '/v1/me', authorization: 'Bearer cpa_first' },
        { path: '/v1/me', authorization: 'Bearer cpa_second' },
        { path: '/v1/me', authorization: 'Bearer cpa_first' },
      ],
    });
  });
});
