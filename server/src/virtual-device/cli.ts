import { startVirtualDevices } from './daemon.js';
import { loadProfileFile, ProfileError, type ProfileTemplate } from './profiles.js';

export interface VirtualDeviceFlags {
  count: number;
  basePort: number;
  host: string;
  profile?: string;
  profileFile?: string;
}

/**
 * `cloudphone-server virtual-device`: starts the devices, prints `host:port serial profile` for each on stdout,
 * and closes them on SIGINT or SIGTERM.
 */
export async function runVirtualDevices(flags: VirtualDeviceFlags): Promise<void> {
  if (flags.profile !== undefined && flags.profileFile !== undefined) {
    throw new ProfileError('give --profile or --profile-file, not both');
  }
  let profile: string | ProfileTemplate = flags.profile ?? 'virtual';
  if (flags.profileFile !== undefined) profile = await loadProfileFile(flags.profileFile);
  const name = flags.profileFile ?? flags.profile ?? 'virtual';
  const devices = await startVirtualDevices(flags.count, flags.basePort, { profile, host: flags.host });

  // Handlers go in before the lines are printed, so a signal sent on that cue is never missed.
  const stop = () => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    Promise.all(devices.map((device) => device.close())).then(
      () => {
        process.exitCode = 0;
      },
      (error: unknown) => {
        process.stderr.write(`cloudphone-server: ${error instanceof Error ? error.message : String(error)}\n`);
        process.exitCode = 1;
      },
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  process.stdout.write(devices.map((device) => `${device.host}:${device.port} ${device.serial} ${name}\n`).join(''));
}
