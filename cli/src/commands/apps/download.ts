import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base/base-command.js';
import { dispositionFileName } from '../../lib/apps.js';
import { formatBytes, formatProgress } from '../../lib/device-io.js';
import { UsageError } from '../../lib/errors.js';

export default class AppsDownload extends BaseCommand<typeof AppsDownload> {
  static override summary = "Download an app's APK";

  static override description = `Streams the APK of <app> to --output (default: the name the server gives it, in the \
current directory), or to standard output with -o -. Shows progress on standard error when it is a terminal. Prints \
the local path (with --json: {appId, size, local}). A failed download leaves no partial file.`;

  static override examples = [
    { description: 'Into the current directory.', command: '<%= config.bin %> apps download app_01JDX8A1B2C3D4E5F6G7H8J9K0' },
    { description: 'To a file, or standard output.', command: '<%= config.bin %> apps download app_01JDX8A1B2C3D4E5F6G7H8J9K0 -o - | unzip -l /dev/stdin' },
  ];

  static override args = {
    app: Args.string({ required: true, ignoreStdin: true, description: 'The app id (app_…).' }),
  };

  static override flags = {
    output: Flags.string({ char: 'o', summary: 'The local file, or - for standard output [default: the APK file name].', helpValue: '<file>' }),
  };

  async run(): Promise<void> {
    const appId = this.args.app;
    const output = this.flags.output;
    if (output === '-' && this.jsonEnabled()) throw new UsageError('--json prints the result on standard output: give -o <file>, not -');
    if (output === '') throw new UsageError('--output must not be empty');

    const client = await this.client({ authenticated: true });
    const response = await client.apps.download(appId);
    const local = output ?? dispositionFileName(response.headers['content-disposition']) ?? `${appId}.apk`;
    const [{ createWriteStream }, { rename, rm }, { Transform }, { pipeline }] = await Promise.all([
      import('node:fs'),
      import('node:fs/promises'),
      import('node:stream'),
      import('node:stream/promises'),
    ]);
    const total = response.contentLength;
    const progress = process.stderr.isTTY && !this.jsonEnabled() && !(local === '-' && process.stdout.isTTY);
    let done = 0;
    let shownAt = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        done += chunk.length;
        const now = Date.now();
        if (progress && now - shownAt > 200) {
          shownAt = now;
          process.stderr.write(`\r${formatProgress(done, total)}\u001B[K`);
        }
        callback(null, chunk);
      },
    });
    try {
      if (local === '-') {
        await pipeline(response.body, counter, process.stdout, { end: false });
        return;
      }
      // Written next to the target and renamed once complete: a failed download leaves no partial file.
      const temp = `${local}.cloudphone-${process.pid}.part`;
      try {
        await pipeline(response.body, counter, createWriteStream(temp, { flags: 'wx' }));
        await rename(temp, local);
      } catch (error) {
        await rm(temp, { force: true });
        throw error;
      }
    } finally {
      if (progress) process.stderr.write('\r\u001B[K');
    }
    if (this.jsonEnabled()) return this.outJson({ appId, size: done, local });
    this.out(`${local}\n`);
    this.note(`${appId} → ${local}: ${formatBytes(done)}`);
  }
}
