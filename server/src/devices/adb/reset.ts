import type { Adb, AdbSync } from '@yume-chan/adb';
import type { DeviceBaseline, DeviceReset, StorageListing } from '../types.js';
import { DeviceOfflineError } from './errors.js';
import { guard } from './guard.js';
import { listPackages, runShell } from './operations.js';

/** Emptied completely by every reset. */
const TMP_DIR = '/data/local/tmp';
/**
 * The shared storage, as the first of these that is a directory shows it (`/sdcard` is a link to
 * `/storage/emulated/0` on phones; both name the same files, so one is walked).
 */
const SHARED_STORAGE_ROOTS = ['/sdcard', '/storage/emulated/0'];
/** A walk of the shared storage stops after this many entries, so that a huge card cannot stall a grant or reset. */
const MAX_STORAGE_ENTRIES = 20_000;
const LIST_TIMEOUT_MS = 15_000;
const RM_TIMEOUT_MS = 60_000;
/** Paths per `rm -rf`, to keep each command line short. */
const RM_BATCH = 50;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

/** What a reset did, and what it could not undo (`error`: the commands that failed, null when every step ran). */
export type ResetOutcome = Omit<DeviceReset, 'status' | 'finishedAt'>;

/** Reads the device's baseline: its third-party packages, a listing of its shared storage and its serial number. */
export async function snapshotDevice(adb: Adb): Promise<DeviceBaseline> {
  const packages = (await listPackages(adb, { thirdParty: true })).map((pkg) => pkg.packageName);
  return { packages, storage: await listSharedStorage(adb), serialNo: await readSerialNo(adb) };
}

/** The refusal to reset a device that is not the one whose baseline this is. */
export class NotTheLeasedDeviceError extends Error {
  constructor(expected: string, found: string) {
    super(`the device reached now has ro.serialno ${JSON.stringify(found)}, not ${JSON.stringify(expected)} as when it was leased: not reset`);
    this.name = 'NotTheLeasedDeviceError';
  }
}

async function readSerialNo(adb: Adb): Promise<string> {
  const result = await runShell(adb, ['getprop', 'ro.serialno'], { timeoutMs: LIST_TIMEOUT_MS });
  return result.stdout.trim();
}

/**
 * Brings the device back to `baseline`: uninstalls the third-party packages installed since, empties
 * /data/local/tmp, removes the files and folders created in the shared storage since, then checks the device against
 * the baseline again and reports every difference left (a package or file deleted, a file changed, something that
 * would not go). Throws NotTheLeasedDeviceError, touching nothing, when the device answers with another serial
 * number than the baseline's, and DeviceOfflineError when it goes away; other failures are recorded in `error`.
 */
export async function resetDevice(adb: Adb, baseline: DeviceBaseline): Promise<ResetOutcome> {
  if (typeof baseline.serialNo === 'string' && baseline.serialNo !== '') {
    const found = await readSerialNo(adb);
    if (found !== baseline.serialNo) throw new NotTheLeasedDeviceError(baseline.serialNo, found);
  }
  const problems: string[] = [];
  const removed: string[] = [];
  const keep = new Set(baseline.packages);

  const uninstalled: string[] = [];
  for (const { packageName } of await listPackages(adb, { thirdParty: true })) {
    if (keep.has(packageName)) continue;
    const result = await runShell(adb, ['pm', 'uninstall', packageName], { timeoutMs: RM_TIMEOUT_MS });
    if (result.exitCode === 0 && result.stdout.includes('Success')) uninstalled.push(packageName);
    else problems.push(`uninstall ${packageName}: ${(result.stdout + result.stderr).trim() || `exit ${result.exitCode}`}`);
  }

  let clearedTmp = false;
  const tmp = await offlineAware(() => listNames(adb, TMP_DIR), problems, `list ${TMP_DIR}`);
  if (tmp !== undefined) {
    const paths = tmp.map((name) => `${TMP_DIR}/${name}`);
    const failed = await removePaths(adb, paths, problems);
    removed.push(...paths.filter((path) => !failed.has(path)));
    clearedTmp = failed.size === 0;
  }

  const before = baseline.storage;
  const now = before === null ? null : await offlineAware(() => listSharedStorage(adb), problems, 'list the shared storage');
  if (before !== null && now !== undefined && now !== null) {
    const created = topMost(Object.keys(now.entries).filter((path) => before.entries[path] === undefined));
    const failed = await removePaths(adb, created, problems);
    removed.push(...created.filter((path) => !failed.has(path)));
  }

  const differences = await verify(adb, baseline, problems);
  return { uninstalled, clearedTmp, removed, differences, error: problems.length === 0 ? null : problems.join('; ') };
}

/** How the device differs from `baseline` now. */
async function verify(adb: Adb, baseline: DeviceBaseline, problems: string[]): Promise<string[]> {
  const differences: string[] = [];
  const packages = await offlineAware(() => listPackages(adb, { thirdParty: true }), problems, 'list packages');
  if (packages !== undefined) {
    const present = new Set(packages.map((pkg) => pkg.packageName));
    for (const name of baseline.packages) if (!present.has(name)) differences.push(`package ${name}: uninstalled during the lease`);
    for (const name of present) if (!baseline.packages.includes(name)) differences.push(`package ${name}: still installed`);
  }
  const before = baseline.storage;
  if (before === null) {
    differences.push('shared storage: no baseline, not checked');
    return differences;
  }
  const now = await offlineAware(() => listSharedStorage(adb), problems, 'list the shared storage');
  if (now === undefined) return differences;
  if (now === null) {
    differences.push('shared storage: could not be read');
    return differences;
  }
  const deleted = topMost(Object.keys(before.entries).filter((path) => now.entries[path] === undefined));
  const deletedSet = new Set(deleted);
  for (const [path, was] of Object.entries(before.entries)) {
    const is = now.entries[path];
    if (deletedSet.has(path)) differences.push(`${path}: deleted during the lease`);
    else if (is !== undefined && is !== was) differences.push(`${path}: changed during the lease`);
  }
  for (const path of topMost(Object.keys(now.entries).filter((entry) => before.entries[entry] === undefined))) {
    differences.push(`${path}: could not be removed`);
  }
  if (before.truncated || now.truncated) {
    differences.push(`shared storage: more than ${MAX_STORAGE_ENTRIES} entries, not all checked`);
  }
  for (const path of now.unreadable) if (!before.unreadable.includes(path)) differences.push(`${path}: could not be listed`);
  return differences.sort();
}

/** Lists the shared storage recursively (without following links); null when no root is a readable directory. */
async function listSharedStorage(adb: Adb): Promise<StorageListing | null> {
  const sync = await guard(adb, adb.sync(), { timeoutMs: LIST_TIMEOUT_MS, what: 'opening sync' });
  try {
    for (const root of SHARED_STORAGE_ROOTS) {
      const top = await readDirectory(adb, sync, root);
      if (top === undefined) continue;
      const listing: StorageListing = { root, entries: {}, truncated: false, unreadable: [] };
      const pending: [string, Entry[]][] = [[root, top]];
      let count = 0;
      while (pending.length > 0) {
        const [directory, entries] = pending.shift()!;
        for (const entry of entries) {
          if (count >= MAX_STORAGE_ENTRIES) {
            listing.truncated = true;
            return listing;
          }
          count++;
          const path = `${directory}/${entry.name}`;
          if ((entry.mode & S_IFMT) === S_IFDIR) {
            listing.entries[path] = 'd';
            const children = await readDirectory(adb, sync, path);
            if (children === undefined) listing.unreadable.push(path);
            else pending.push([path, children]);
          } else {
            listing.entries[path] = `f:${entry.size}:${entry.mtime}`;
          }
        }
      }
      return listing;
    }
    return null;
  } finally {
    sync.dispose().catch(() => undefined);
  }
}

interface Entry {
  name: string;
  mode: number;
  size: bigint | number;
  mtime: bigint | number;
}

/** A directory's entries, sorted, or undefined when it cannot be listed (missing, not a directory, no permission). */
async function readDirectory(adb: Adb, sync: AdbSync, path: string): Promise<Entry[] | undefined> {
  try {
    const entries = await guard(adb, sync.readdir(path), { timeoutMs: LIST_TIMEOUT_MS, what: `listing ${path}` });
    return entries
      .filter((entry) => entry.name !== '.' && entry.name !== '..')
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } catch (error) {
    if (error instanceof DeviceOfflineError) throw error;
    return undefined;
  }
}

async function listNames(adb: Adb, path: string): Promise<string[]> {
  const sync = await guard(adb, adb.sync(), { timeoutMs: LIST_TIMEOUT_MS, what: 'opening sync' });
  try {
    return ((await readDirectory(adb, sync, path)) ?? []).map((entry) => entry.name);
  } finally {
    sync.dispose().catch(() => undefined);
  }
}

/** `rm -rf` in batches; resolves the paths of the batches that failed (each failure is recorded in `problems`). */
async function removePaths(adb: Adb, paths: readonly string[], problems: string[]): Promise<Set<string>> {
  const failed = new Set<string>();
  for (let index = 0; index < paths.length; index += RM_BATCH) {
    const batch = paths.slice(index, index + RM_BATCH);
    const result = await runShell(adb, ['rm', '-rf', ...batch], { timeoutMs: RM_TIMEOUT_MS });
    if (result.exitCode !== 0) {
      for (const path of batch) failed.add(path);
      problems.push(`rm ${batch.join(' ')}: ${result.stderr.trim() || `exit ${result.exitCode}`}`);
    }
  }
  return failed;
}

/** The paths none of whose ancestors is in the list, sorted: removing those removes all. */
function topMost(paths: readonly string[]): string[] {
  const all = new Set(paths);
  return paths
    .filter((path) => {
      for (let at = path.lastIndexOf('/'); at > 0; at = path.lastIndexOf('/', at - 1)) {
        if (all.has(path.slice(0, at))) return false;
      }
      return true;
    })
    .sort();
}

/** `work`'s result, or undefined after recording its failure as `what`; a device gone offline is thrown. */
async function offlineAware<T>(work: () => Promise<T>, problems: string[], what: string): Promise<T | undefined> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof DeviceOfflineError) throw error;
    problems.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
}
