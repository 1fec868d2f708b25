import { existsSync } from 'node:fs';
import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base/base-command.js';
import { dispositionFileName } from '../../lib/apps.js';
import { formatBytes } from '../../lib/device-io.js';
import { UsageError } from '../../lib/errors.js';
import { fileExistsError, saveDownload } from '../../lib/transfer.js';

export default class InvoicesDownload extends BaseCommand<typeof InvoicesDownload> {
  static override summary = 'Download an invoice as PDF or CSV';

  static override description = `Saves the invoice as a PDF document (--format pdf, the default) or its lines as CSV \
(--format csv) to --output (default: the name the server gives it, in the current directory), or to standard output \
with -o -, which for a PDF must not be a terminal. Prints the local path (with --json: {invoiceId, format, size, \
local}). A failed download leaves no partial file. An existing file is replaced only with --force (otherwise: exit 2, \
the file untouched). The current period's preview (invoices preview) is no invoice yet and has no document.`;

  static override examples = [
    { description: 'The PDF, into the current directory.', command: '<%= config.bin %> invoices download inv_01JDXD2E3F4G5H6J7K8M9N0P1Q' },
    { description: 'The lines as CSV on standard output.', command: '<%= config.bin %> invoices download inv_01JDXD2E3F4G5H6J7K8M9N0P1Q --format csv -o -' },
  ];

  static override args = {
    invoice: Args.string({ required: true, ignoreStdin: true, description: 'The invoice id (inv_…).' }),
  };

  static override flags = {
    format: Flags.string({ summary: 'The document format [default: pdf].', options: ['pdf', 'csv'] }),
    output: Flags.string({ char: 'o', summary: 'The local file, or - for standard output [default: the name the server gives it].', helpValue: '<file>' }),
    force: Flags.boolean({ char: 'f', summary: 'Replace the local file if it exists.' }),
  };

  async run(): Promise<void> {
    const invoiceId = this.args.invoice;
    const format = (this.flags.format ?? 'pdf') as 'pdf' | 'csv';
    const { output, force } = this.flags;
    if (output === '') throw new UsageError('--output must not be empty');
    if (output === '-') {
      if (this.jsonEnabled()) throw new UsageError('--json prints the result on standard output: give -o <file>, not -');
      if (format === 'pdf' && process.stdout.isTTY) throw new UsageError('Not writing a PDF to a terminal: give -o <file.pdf> or pipe the output');
    }
    if (output !== undefined && output !== '-' && !force && existsSync(output)) throw fileExistsError(output);

    const client = await this.client({ authenticated: true });
    const response = await client.invoices.download(invoiceId, { format });
    const local = output ?? dispositionFileName(response.headers['content-disposition']) ?? `${invoiceId}.${format}`;
    if (local !== '-' && !force && existsSync(local)) {
      response.body.destroy();
      throw fileExistsError(local);
    }
    const done = await saveDownload(response, local, false, { overwrite: force });
    if (local === '-') return;
    if (this.jsonEnabled()) return this.outJson({ invoiceId, format, size: done, local });
    this.out(`${local}\n`);
    this.note(`${invoiceId} → ${local}: ${formatBytes(done)}`);
  }
}
