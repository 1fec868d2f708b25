import { existsSync } from 'node:fs';
import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base/base-command.js';
import { dispositionFileName } from '../../lib/apps.js';
import { formatBytes } from '../../lib/device-io.js';
import { fileExistsError, saveDownload } from '../../lib/transfer.js';
import { UsageError } from '../../lib/errors.js';

export default class AppsDownload extends BaseCommand<typeof AppsDownload> {
  static override summary = "Download an app's APK";

  static override description = `Streams the APK of <app> to --output (default: the name the server gives it, in the \
current directory), or to standard output with -o -. Shows progress on standard error when it is a terminal. Prints \
the local path (with --json: {appId, size, local}). A failed download leaves no partial file. An existing file is \
replaced only with --force (otherwise: exit 2, the file untouched).`;

  static override examples = [
    { description: 'Into the current directory.', command: '<%= config.bin %> apps download app_01JDX8A1B2C3D4E5F6G7H8J9K0' },
    { description: 'To a file, or standard output.', command: '<%= config.bin %> apps download app_01JDX8A1B2C3D4E5F6G7H8J9K0 -o - | unzip -l /dev/stdin' },
  ];

  static override args = {
    app: Args.string({ required: true, ignoreStdin: true, description: 'The app id (app_…).' }),
  };

  static override flags = {
    output: Flags.string({ char: 'o', summary: 'The local file, or - for standard output [default: the APK file name].', helpValue: '<file>' }),
    force: Flags.boolean({ char: 'f', summary: 'Replace the local file if it exists.' }),
  };

  async run(): Promise<void> {
    const appId = this.args.app;
    const output = this.flags.output;
    if (output === '-' && this.jsonEnabled()) throw new UsageError('--json prints the result on standard output: give -o <file>, not -');
    if (output === '') throw new UsageError('--output must not be empty');
    const force = this.flags.force;
    if (output !== undefined && output !== '-' && !force && existsSync(output)) throw fileExistsError(output);

    const client = await this.client({ authenticated: true });
    const response = await client.apps.download(appId);
    const local = output ?? dispositionFileName(response.headers['content-disposition']) ?? `${appId}.apk`;
    if (local !== '-' && !force && existsSync(local)) {
      response.body.destroy();
      throw fileExistsError(local);
    }
    const progress = process.stderr.isTTY && !this.jsonEnabled() && !(local === '-' && process.stdout.isTTY);
    const done = await saveDownload(response, local, progress, { overwrite: force });
    if (local === '-') return;
    if (this.jsonEnabled()) return this.outJson({ appId, size: done, local });
    this.out(`${local}\n`);
    this.note(`${appId} → ${local}: ${formatBytes(done)}`);
  }
}
