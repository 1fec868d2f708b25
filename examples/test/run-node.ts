import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';

/** tsx's command line, as `npx tsx` runs it, resolved from node_modules. */
export const TSX_CLI = createRequire(import.meta.url).resolve('tsx/cli');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node …args` in `cwd` with `env` over this process's environment, collecting its output. */
export function runNode(args: string[], cwd: string, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
