import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './results.js';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export async function waitForHttp(url: string, child: ChildProcess, attempts = 200): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (child.exitCode !== null) throw new Error(`process exited with ${child.exitCode} before ${url} answered`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not answer`);
}

export function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

export interface BenchServer {
  url: string;
  adminPassword: string;
  /** Its data directory (SQLite's database file is there). */
  dataDir: string;
  process: ChildProcess;
  close(): Promise<void>;
}

/**
 * The real cloudphone server, built, in its own process with a fresh data dir. `BENCH_SERVER_NODE_ARGS` gives it
 * Node arguments, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile it.
 */
export async function startCloudphoneServer(env: NodeJS.ProcessEnv = {}): Promise<BenchServer> {
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-bench-'));
  const port = await freePort();
  const adminPassword = 'bench-admin-password-0123';
  const child = spawn(
    process.execPath,
    [...nodeArgs, join(repoRoot, 'server', 'bin', 'cloudphone-server.js'), 'start', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir],
    { env: { ...process.env, CLOUDPHONE_ADMIN_PASSWORD: adminPassword, ...env }, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${url}/healthz`, child);
  } catch (error) {
    await stop(child);
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    url,
    adminPassword,
    dataDir,
    process: child,
    async close() {
      await stop(child);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
