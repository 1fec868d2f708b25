import { Args, Flags } from '@oclif/core';
import type { LogDump, LogEntry } from '@cloudphone/sdk';
import { DeviceCommand, deviceOption } from '../../lib/device-command.js';
import { ACCESS_ENDED_CLOSE_CODE } from '../../lib/device.js';
import { formatLogEntry, parsePriority } from '../../lib/device-io.js';
import { CliError, ExitCode } from '../../lib/errors.js';

export default class DevicesLogcat extends DeviceCommand<typeof DevicesLogcat> {
  static override summary = "Print a device's log";

  static override description = `Prints the device's log buffer like \`adb logcat -v threadtime\`: \
MM-DD HH:MM:SS.mmm  PID  TID P TAG: message (local time). With --follow, keeps printing new entries until Ctrl-C \
(exit 130) or the lease ends (exit 1). With --json: the entries as an array, or one JSON object per line when \
following. Needs a granted lease on the device.`;

  static override examples = [
    { description: 'The last 100 entries.', command: '<%= config.bin %> devices logcat dev_01JDX6A1B2C3D4E5F6G7H8J9K0 --tail 100' },
    { description: 'Follow errors of two tags.', command: '<%= config.bin %> devices logcat -f --priority E --tag ActivityManager --tag MyApp' },
    { description: 'As JSON lines, for jq.', command: "<%= config.bin %> devices logcat -f --json | jq -r '.message'" },
  ];

  static override args = {
    device: Args.string({ required: false, ignoreStdin: true, description: 'The device id (or --device, or CLOUDPHONE_DEVICE).' }),
  };

  static override flags = {
    device: deviceOption(),
    priority: Flags.string({ char: 'p', summary: 'Only entries of this priority or higher: V, D, I, W, E or F.', helpValue: '<V|D|I|W|E|F>' }),
    tag: Flags.string({ char: 't', summary: 'Only entries with this tag (repeatable).', multiple: true, helpValue: '<tag>' }),
    pid: Flags.integer({ summary: 'Only entries of this process.', min: 1, helpValue: '<pid>' }),
    tail: Flags.integer({ summary: 'Only the last this many entries (not with --follow).', min: 1, max: 100_000, helpValue: '<n>', exclusive: ['follow'] }),
    follow: Flags.boolean({ char: 'f', summary: 'Keep printing new entries until Ctrl-C.' }),
  };

  async run(): Promise<void> {
    const deviceId = this.deviceId(this.args.device);
    const query: { priority?: LogEntry['priority']; tag?: string[]; pid?: number; tail?: number } = {};
    if (this.flags.priority !== undefined) query.priority = parsePriority(this.flags.priority);
    if (this.flags.tag !== undefined && this.flags.tag.length > 0) query.tag = this.flags.tag;
    if (this.flags.pid !== undefined) query.pid = this.flags.pid;
    const client = await this.api();
    if (!this.flags.follow) {
      if (this.flags.tail !== undefined) query.tail = this.flags.tail;
      const dump: LogDump = await client.request('getDeviceLogcat', { path: { deviceId }, query });
      if (this.jsonEnabled()) return this.outJson(dump.entries);
      this.out(dump.entries.map((entry) => formatLogEntry(entry)).join(''));
      return;
    }

    const { openWebSocket } = await import('@cloudphone/sdk');
    const { tail: _tail, ...streamQuery } = query;
    const socket = await openWebSocket(client, 'followDeviceLogcat', { path: { deviceId }, query: streamQuery });
    const json = this.jsonEnabled();
    const ended = await new Promise<{ code: number; reason: string; error?: string }>((resolve) => {
      let error: string | undefined;
      socket.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) return;
        let entry: LogEntry & { type?: string; code?: string; detail?: string };
        try {
          entry = JSON.parse(data.toString('utf8')) as typeof entry;
        } catch {
          return;
        }
        if (entry.type === 'error') {
          error = `${entry.detail ?? 'The log stream failed'} (${entry.code ?? 'error'})`;
          return;
        }
        process.stdout.write(json ? `${JSON.stringify(entry)}\n` : formatLogEntry(entry));
      });
      socket.on('error', (cause: Error) => {
        error ??= cause.message;
      });
      socket.on('close', (code: number, reason: Buffer) => {
        const why = reason.toString('utf8');
        resolve(error === undefined ? { code, reason: why } : { code, reason: why, error });
      });
    });
    if (ended.code === ACCESS_ENDED_CLOSE_CODE) {
      throw new CliError(`Access to the device ended: ${ended.reason || 'lease ended'} (${ended.code})`, 'lease_ended', ExitCode.error);
    }
    if (ended.error !== undefined || (ended.code !== 1000 && ended.code !== 1005)) {
      throw new CliError(ended.error ?? `The log stream closed: ${ended.reason || ended.code}`, 'stream_closed', ExitCode.error);
    }
  }
}
