import { resources as generated } from '../generated/resources.js';
import { Apps } from './apps.js';
import { Devices } from './devices.js';
import { Events } from './events.js';
import { Invoices } from './invoices.js';
import { Leases } from './leases.js';
import { Usage } from './usage.js';

/**
 * The resource classes of a client, by property: the generated ones, with the handwritten `Devices`, `Leases`,
 * `Apps`, `Usage`, `Invoices` and `Events` (which extend the generated `DevicesResource`, `LeasesResource`, …) in
 * their place.
 */
export const resources = {
  ...generated,
  devices: Devices,
  leases: Leases,
  apps: Apps,
  usage: Usage,
  invoices: Invoices,
  events: Events,
} as const;

/** The resource namespaces of a client: `cp.users`, `cp.devices`, `cp.leases`, … */
export type Resources = { readonly [Name in keyof typeof resources]: InstanceType<(typeof resources)[Name]> };

export {
  Apps,
  InstallJobHandle,
  InstallJobTimeoutError,
  type AppSource,
  type InstallAppOptions,
  type InstallWaitOptions,
  type UploadAppOptions,
} from './apps.js';
export { Devices } from './devices.js';
export { Events, type FollowEventsOptions } from './events.js';
export { Invoices } from './invoices.js';
export { Leases, type UseLeaseContext, type UseLeaseOptions } from './leases.js';
export { Usage, type UsageReportQuery } from './usage.js';
export {
  DeviceHandle,
  type LogcatFilter,
  type OpenShellOptions,
  type PushOptions,
  type PushSource,
  type ShellOptions,
} from './device.js';
export { LeaseHandle, type KeepAliveOptions, type LeaseDeviceHandle, type StopKeepAlive, type WaitOptions } from './lease.js';
export { ShellSession } from './shell-session.js';
export { DeviceStreamError, LeaseEndedError, LeaseNotGrantedError } from './errors.js';
