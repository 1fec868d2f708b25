import { execFile, execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout's root. */
export const root = fileURLToPath(new URL('../../..', import.meta.url));
/** The built `cloudphone-server` entry point. */
export const serverBin = join(root, 'server', 'bin', 'cloudphone-server.js');
/** The environment without CLOUDPHONE_* settings, so only what a test passes configures the server. */
export const serverEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('CLOUDPHONE_')));

export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Builds the server package, so `serverBin` runs the current sources. */
export function buildServer(): void {
  execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-b', 'server'], {
    cwd: root,
    stdio: 'pipe',
  });
}

/** Runs `cloudphone-server <args>` to its end (at most 20 s) with `serverEnv` plus `extraEnv`. */
export function runServerBin(args: string[], extraEnv: Record<string, string> = {}): Promise<Outcome> {
  const options = { env: { ...serverEnv, ...extraEnv }, timeout: 20_000 };
  return new Promise((resolve) => {
    execFile(process.execPath, [serverBin, ...args], options, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}
