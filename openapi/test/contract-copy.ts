import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { loadSpec } from '../generate/spec.js';

/** The contract's folder: the root `cloudphone.yaml` and every file it reaches. */
export const contractDir = join(import.meta.dirname, '..');
export const contractRoot = join(contractDir, 'cloudphone.yaml');

/**
 * Copies every file of the contract into `dir` (the same layout below it) and returns the copy's root. `edits`
 * maps a file (relative to the contract's folder, `domains/devices.yaml`) to a change of its text.
 */
export function copyContract(dir: string, edits: Record<string, (text: string) => string> = {}): string {
  for (const file of loadSpec(contractRoot).files) {
    const path = relative(contractDir, file);
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    cpSync(file, join(dir, path));
  }
  for (const [path, edit] of Object.entries(edits)) {
    const text = readFileSync(join(dir, path), 'utf8');
    const changed = edit(text);
    if (changed === text) throw new Error(`the edit of ${path} changed nothing`);
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), changed);
  }
  return join(dir, 'cloudphone.yaml');
}
