import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base/base-command.js';
import { UsageError } from '../../lib/errors.js';
import { forwardEvent, formatForwardedLine, reconnectNote } from '../../lib/notifications.js';
import { generateSecret, secretKey } from '../../lib/standard-webhooks.js';

/** How long the local receiver has to answer each event, in seconds (as the server's default). */
const DEFAULT_TIMEOUT = 15;

export default class WebhooksListen extends BaseCommand<typeof WebhooksListen> {
  static override summary = 'Forward live events to a local webhook receiver';

  static override description = `Follows the event log live (as \`events follow\`) and POSTs each event to --forward-to \
as the server delivers webhooks (Standard Webhooks: the Event JSON as the body; webhook-id, the event id; \
webhook-timestamp; webhook-signature, v1 HMAC-SHA256), signed with --secret or, without it, a secret made for this \
session, printed on standard error at the start. Use it to develop a receiver on your machine without registering an \
endpoint the server could not reach. Prints one line per event: when it occurred, its type and id, and the receiver's \
status and latency (with --json: one {eventId, type, occurredAt, status | error, latencyMs} object per line). Events \
are forwarded one at a time, in order; a failed forward is reported and not retried. Runs until Ctrl-C (exit 130).`;

  static override examples = [
    { description: 'Forward every event you may see to a local server.', command: '<%= config.bin %> webhooks listen --forward-to http://localhost:3000/hook' },
    { description: 'Lease events, signed with your endpoint’s secret.', command: "<%= config.bin %> webhooks listen --forward-to http://127.0.0.1:3000/hook --type 'lease.*' --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" },
  ];

  static override flags = {
    'forward-to': Flags.string({ summary: 'The receiver URL (http or https).', required: true, helpValue: '<url>' }),
    type: Flags.string({ char: 't', summary: "Only events of this type, or family ('lease.*') (repeatable).", multiple: true, helpValue: '<type>' }),
    secret: Flags.string({ summary: 'The signing secret (whsec_…) [default: a new one for this session].', helpValue: '<whsec_…>' }),
    timeout: Flags.integer({ summary: `Seconds the receiver has to answer each event [default: ${DEFAULT_TIMEOUT}].`, min: 1, max: 300, helpValue: '<seconds>' }),
  };

  async run(): Promise<void> {
    const { 'forward-to': target, type } = this.flags;
    const url = parseTarget(target);
    const secret = this.flags.secret ?? generateSecret();
    const key = secretKey(secret);
    if (key === undefined) throw new UsageError('--secret must be whsec_ followed by the base64 of the key');
    const timeoutMs = (this.flags.timeout ?? DEFAULT_TIMEOUT) * 1000;
    const userAgent = `cloudphone-cli/${this.config.version}`;

    const client = await this.client({ authenticated: true });
    this.note(`Forwarding events to ${url} (Ctrl-C to stop). Signing secret: ${secret}`);
    const events = client.events.follow({
      ...(type === undefined ? {} : { type }),
      onReconnect: ({ error, delay }) => this.note(reconnectNote(error, delay)),
    });
    const json = this.jsonEnabled();
    for await (const event of events) {
      const forwarded = await forwardEvent(url, key, event, { timeoutMs, userAgent });
      this.out(json ? `${JSON.stringify(forwarded)}\n` : formatForwardedLine(forwarded));
    }
  }
}

function parseTarget(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`--forward-to is not a URL: ${value}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--forward-to must be an http or https URL: ${value}`);
  return url.href;
}
