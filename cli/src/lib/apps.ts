/**
 * Pure helpers of the handwritten app commands (`apps upload|download|install`): progress and status lines. No heavy
 * imports: every one of those command files loads this.
 */
import type { InstallJob } from '@cloudphone/sdk';
import { formatProgress } from './device-io.js';

type JobDevice = InstallJob['devices'][number];

/** `[##########··········]  50% 1.5 MiB / 3.0 MiB` (without a total: the bytes so far). */
export function formatProgressBar(done: number, total: number | null, width = 24): string {
  if (total === null || total <= 0) return formatProgress(done, total);
  const filled = Math.min(width, Math.floor((done / total) * width));
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${formatProgress(done, total)}`;
}

/** The words a device's install status is shown with. */
const STATUS_WORDS: Record<JobDevice['status'], string> = {
  pending: 'waiting',
  installing: 'installing…',
  installed: 'installed',
  failed: 'failed',
};

/** `CPVIRT0001 (dev_…): installed` or `…: failed: INSTALL_FAILED_OLDER_SDK: …`. */
export function installDeviceLine(device: JobDevice): string {
  const reason = device.status === 'failed' && device.reason ? `: ${device.reason}` : '';
  return `${device.serial} (${device.deviceId}): ${STATUS_WORDS[device.status] ?? device.status}${reason}`;
}

/** The devices of a finished job that failed, one `serial (id): reason` line each. */
export function failedDeviceLines(job: Pick<InstallJob, 'devices'>): string[] {
  return job.devices.filter((device) => device.status === 'failed').map((device) => `  ${device.serial} (${device.deviceId}): ${device.reason ?? 'failed'}`);
}

/**
 * The file name of a `Content-Disposition` header (`filename*=UTF-8''…` preferred over `filename="…"`), without
 * any directory part; `null` when it has none that is safe to use.
 */
export function dispositionFileName(header: string | undefined): string | null {
  if (!header) return null;
  let name: string | undefined;
  const extended = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(header);
  if (extended) {
    try {
      name = decodeURIComponent(extended[1]!.trim());
    } catch {
      name = undefined;
    }
  }
  if (name === undefined) {
    const plain = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/.exec(header);
    name = plain ? (plain[1]?.replace(/\\(.)/g, '$1') ?? plain[2]) : undefined;
  }
  const base = name?.split(/[\\/]/).pop()?.trim();
  if (!base || base === '.' || base === '..' || base.startsWith('-')) return null;
  return base;
}

