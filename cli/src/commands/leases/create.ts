import { Flags } from '@oclif/core';
import type { Lease, NewLease } from '@cloudphone/sdk';
import { BaseCommand } from '../../base/base-command.js';
import { operationFlags } from '../../base/operation-command.js';
import { renderEstimate } from '../../lib/billing.js';
import { leaseDeviceRows } from '../../lib/device-io.js';
import { CliError, ExitCode, UsageError } from '../../lib/errors.js';
import { renderKeyValue, renderTable } from '../../lib/output.js';
import { readData } from '../../lib/request.js';

/** The longest a single getLease may hold the request (the contract's maximum). */
const LONG_POLL_SECONDS = 60;

export default class LeasesCreate extends BaseCommand<typeof LeasesCreate> {
  static override summary = 'Lease devices';

  static override description = `Grants --count devices matching the selector flags for --ttl seconds and prints the \
lease and a table of its devices (with --json: the lease). When too few devices are free: without --wait, fails at once \
(409 no_devices_available); with --wait <seconds>, the lease is queued and the command waits for it (exit 69, printing \
the lease, when the time passes first; Ctrl-C cancels the queued lease and exits 130). Fewer matching devices than \
--count at all is 422 selector_unsatisfiable. With one device, standard error shows the export line that makes it \
the default device of the device commands. --project tags the lease for project budgets and usage reports.

With --estimate, nothing is leased: prints what the lease would cost now (the prices of the devices a grant would \
pick, less the included minutes left), the quotas it would exceed, the budgets that would pay for it and whether it \
would be allowed (with --json: the LeaseEstimate). Exit code 0 when it would be allowed, 1 when not.`;

  static override examples = [
    { description: 'Lease one device for 15 minutes.', command: '<%= config.bin %> leases create' },
    { description: 'Two Android 14+ devices for an hour, waiting up to 5 minutes.', command: "<%= config.bin %> leases create --count 2 --sdk-min 34 --ttl 3600 --wait 300 --note 'nightly UI tests'" },
    { description: 'Use it in a script.', command: 'export CLOUDPHONE_DEVICE=$(<%= config.bin %> leases create --json | jq -r .devices[0].id)' },
    { description: 'What two flagship phones for 30 minutes would cost, without leasing them.', command: '<%= config.bin %> leases create --estimate --count 2 --label tier=flagship --ttl 1800 --project checkout-app' },
  ];

  static override flags = {
    count: Flags.integer({ char: 'n', summary: 'How many devices [default: 1].', min: 1, max: 100 }),
    ttl: Flags.integer({ summary: 'How long the lease lasts unless renewed, in seconds [default: 900].', min: 30, max: 86_400, aliases: ['ttl-seconds'], helpValue: '<seconds>' }),
    wait: Flags.integer({ summary: 'Queue and wait up to this many seconds when too few devices are free [default: 0, fail at once].', min: 0, max: 3600, aliases: ['wait-seconds'], helpValue: '<seconds>' }),
    note: Flags.string({ summary: 'A note shown with the lease (at most 200 characters).' }),
    project: Flags.string({ summary: 'Tag the lease with a project, for project budgets and usage reports.', helpValue: '<project>' }),
    estimate: Flags.boolean({ summary: 'Print what the lease would cost and whether it would be allowed, without leasing (exit 1 when not allowed).' }),
    model: Flags.string({ summary: 'Only devices of this model.', helpValue: '<model>' }),
    kind: Flags.string({ summary: 'Only devices of this kind.', options: ['physical', 'emulator', 'network', 'virtual'] }),
    'sdk-min': Flags.integer({ summary: 'Only devices with at least this Android SDK level.', min: 1, helpValue: '<level>' }),
    'sdk-max': Flags.integer({ summary: 'Only devices with at most this Android SDK level.', min: 1, helpValue: '<level>' }),
    abi: Flags.string({ summary: 'Only devices supporting this ABI (arm64-v8a, x86_64, …).', helpValue: '<abi>' }),
    label: Flags.string({ char: 'l', summary: 'Only devices with this label, key=value (repeatable).', multiple: true, helpValue: '<key=value>' }),
    host: Flags.string({ summary: 'Only devices of this host.', helpValue: '<hostId>' }),
    device: Flags.string({ char: 's', summary: 'Only this device (repeatable).', multiple: true, helpValue: '<deviceId>' }),
    data: operationFlags.data(),
    'idempotency-key': operationFlags.idempotencyKey(),
  };

  async run(): Promise<void> {
    const flags = this.flags;
    const data = flags.data === undefined ? undefined : await readData(flags.data);
    if (data !== undefined && (data === null || typeof data !== 'object' || Array.isArray(data))) throw new UsageError('--data must be a JSON object');
    const body: NewLease = { ...(data as NewLease | undefined) };
    const selector = { ...body.selector };
    if (flags.model !== undefined) selector.model = flags.model;
    if (flags.kind !== undefined) selector.kind = flags.kind as NonNullable<typeof selector.kind>;
    if (flags['sdk-min'] !== undefined) selector.sdkMin = flags['sdk-min'];
    if (flags['sdk-max'] !== undefined) selector.sdkMax = flags['sdk-max'];
    if (flags.abi !== undefined) selector.abi = flags.abi;
    if (flags.host !== undefined) selector.hostId = flags.host;
    if (flags.device !== undefined && flags.device.length > 0) selector.deviceIds = flags.device;
    if (flags.label !== undefined && flags.label.length > 0) {
      const labels: Record<string, string> = { ...selector.labels };
      for (const pair of flags.label) {
        const eq = pair.indexOf('=');
        if (eq < 1) throw new UsageError(`--label takes key=value, not ${JSON.stringify(pair)}`);
        labels[pair.slice(0, eq)] = pair.slice(eq + 1);
      }
      selector.labels = labels;
    }
    if (Object.keys(selector).length > 0) body.selector = selector;
    if (flags.count !== undefined) body.count = flags.count;
    if (flags.ttl !== undefined) body.ttlSeconds = flags.ttl;
    if (flags.wait !== undefined) body.waitSeconds = flags.wait;
    if (flags.note !== undefined) body.note = flags.note;
    if (flags.project !== undefined) body.project = flags.project;

    const client = await this.client({ authenticated: true });
    if (flags.estimate) {
      const estimate = await client.leases.estimate(body);
      if (this.jsonEnabled()) this.outJson(estimate);
      else this.out(renderEstimate(estimate, { color: this.color }));
      if (!estimate.allowed) {
        if (!this.jsonEnabled()) this.note('The lease would not be allowed now.');
        this.exit(ExitCode.error);
      }
      return;
    }
    const options = flags['idempotency-key'] === undefined ? {} : { idempotencyKey: flags['idempotency-key'] };
    let lease: Lease = await client.request('createLease', { body }, options);

    if (lease.status === 'queued') {
      const waitSeconds = body.waitSeconds ?? 0;
      // Ctrl-C while queued cancels the lease: nobody would use it.
      let interrupted = false;
      const queuedId = lease.id;
      this.onInterrupt(async () => {
        if (interrupted) process.exit(ExitCode.interrupted);
        interrupted = true;
        process.stderr.write('\nCancelling the queued lease…\n');
        await client.request('releaseLease', { path: { leaseId: queuedId } }).catch(() => undefined);
        process.exit(ExitCode.interrupted);
      });
      // The server ends the lease `timed_out` when waitSeconds pass; a little slack for the last poll.
      const deadline = Date.now() + (waitSeconds + 5) * 1000;
      this.note(`Lease ${lease.id} is queued (position ${lease.queuePosition ?? '?'}); waiting up to ${waitSeconds} s for devices…`);
      while (lease.status === 'queued' && Date.now() < deadline) {
        const remaining = Math.ceil((deadline - Date.now()) / 1000);
        const wait = Math.max(1, Math.min(LONG_POLL_SECONDS, remaining));
        lease = await client.request('getLease', { path: { leaseId: lease.id }, query: { waitSeconds: wait } });
      }
    }

    if (this.jsonEnabled()) this.outJson(lease);
    else this.print(lease);
    if (lease.status === 'queued' || lease.status === 'timed_out') {
      if (!this.jsonEnabled()) this.note(`No devices were free within ${body.waitSeconds ?? 0} s (lease ${lease.status}).`);
      this.exit(ExitCode.timedOut);
    }
    if (lease.status !== 'granted') {
      throw new CliError(`The lease ended while waiting (${lease.endReason ?? lease.status})`, 'lease_not_granted', ExitCode.error);
    }
    if (lease.devices.length === 1 && !this.jsonEnabled()) {
      this.note(`To use it with the device commands:\n  export CLOUDPHONE_DEVICE=${lease.devices[0]!.id}`);
    }
  }

  private onInterrupt(handler: () => void | Promise<void>): void {
    for (const listener of process.listeners('SIGINT')) process.off('SIGINT', listener);
    process.on('SIGINT', () => void handler());
  }

  private print(lease: Lease): void {
    const { devices, selector: _selector, ...rest } = lease;
    const summary = Object.fromEntries(Object.entries(rest).filter(([, value]) => value !== null));
    const render = { color: this.color };
    this.out(renderKeyValue(summary, ['id', 'status', 'count', ...(lease.expiresAt === null ? [] : ['expiresAt'])], render));
    if (devices.length > 0) this.out(`\n${renderTable(leaseDeviceRows(devices), ['id', 'serial', 'kind', 'model', 'sdk'], render)}`);
  }
}
