import { Args, Flags } from '@oclif/core';
import type { App } from '@cloudphone/sdk';
import { BaseCommand } from '../../base/base-command.js';
import { formatProgressBar } from '../../lib/apps.js';
import { formatBytes } from '../../lib/device-io.js';
import { UsageError } from '../../lib/errors.js';
import { renderKeyValue } from '../../lib/output.js';

export default class AppsUpload extends BaseCommand<typeof AppsUpload> {
  static override summary = 'Upload an APK';

  static override description = `Adds <file> (or standard input for -) to your apps and prints what the server read \
from it: package, versions, SDK levels, permissions, launchable activity, ABIs (with --json: the App). A file is \
offered by its SHA-256 first: when the server already has these bytes nothing is sent (standard error says so). \
Shows a progress bar on standard error when it is a terminal. Uploading the same bytes again answers the same app.`;

  static override examples = [
    { description: 'Upload a build.', command: '<%= config.bin %> apps upload app/build/outputs/apk/debug/app-debug.apk' },
    { description: 'Share it with every user; keep the id.', command: 'APP=$(<%= config.bin %> apps upload app.apk --shared --json | jq -r .id)' },
  ];

  static override args = {
    file: Args.string({ required: true, ignoreStdin: true, description: 'The APK file, or - for standard input.' }),
  };

  static override flags = {
    shared: Flags.boolean({ summary: 'Make the app visible to every user (default: only to you and admins).' }),
    name: Flags.string({ summary: "The file name the app is listed with [default: the file's name].", helpValue: '<fileName>' }),
  };

  async run(): Promise<void> {
    const { file } = this.args;
    if (file === '-' && process.stdin.isTTY) throw new UsageError('Standard input is a terminal: pipe the APK in, or give a file');
    if (file !== '-') {
      const { stat } = await import('node:fs/promises');
      let info;
      try {
        info = await stat(file);
      } catch (error) {
        throw new UsageError(`Cannot read ${file}: ${(error as Error).message}`);
      }
      if (!info.isFile()) throw new UsageError(`${file} is not a file`);
    }

    const client = await this.client({ authenticated: true });
    const progress = process.stderr.isTTY && !this.jsonEnabled();
    let shownAt = 0;
    let hashMatched = false;
    let sent = 0;
    if (progress && file !== '-') process.stderr.write(`Checking whether the server has ${file}…`);
    let app: App;
    try {
      app = await client.apps.upload(file === '-' ? process.stdin : file, {
        ...(this.flags.shared ? { shared: true } : {}),
        ...(this.flags.name === undefined ? {} : { fileName: this.flags.name }),
        onHashMatch: () => {
          hashMatched = true;
        },
        onProgress: (done, total) => {
          sent = done;
          const now = Date.now();
          if (progress && (now - shownAt > 100 || done === total)) {
            shownAt = now;
            process.stderr.write(`\rUploading ${formatProgressBar(done, total)}\u001B[K`);
          }
        },
      });
    } finally {
      if (progress) process.stderr.write('\r\u001B[K');
    }

    if (this.jsonEnabled()) return this.outJson(app);
    this.out(
      renderKeyValue(
        app,
        ['id', 'metadata.packageName', 'metadata.versionName', 'metadata.versionCode', 'metadata.label', 'kind', 'fileName', 'size', 'sha256'],
        { color: this.color },
      ),
    );
    if (hashMatched) this.note(`The server already had these bytes (sha256 ${app.sha256.slice(0, 12)}…): nothing was uploaded.`);
    else this.note(`Uploaded ${formatBytes(sent)} as ${app.id}.`);
  }
}
