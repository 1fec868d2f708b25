import { describe, expect, it } from 'vitest';
import { INSTALL_HINT, startCluster } from '../helpers/postgres.js';

describe('the private PostgreSQL of the tests', () => {
  it('says in one line how to install PostgreSQL when initdb is nowhere', async () => {
    await expect(startCluster({ path: '/nonexistent', versions: '/nonexistent' })).rejects.toThrow(INSTALL_HINT);
    expect(INSTALL_HINT).toContain('apt-get install -y postgresql');
    expect(INSTALL_HINT).not.toContain('\n');
  });
});
