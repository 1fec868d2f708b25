import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { newWebhookSecret } from '../../../src/notifications/webhooks/secrets.js';
import { signatureHeaders } from '../../../src/notifications/webhooks/signing.js';

const body = JSON.stringify({ id: 'evt_01JABC', type: 'lease.granted', data: { note: 'é ✓' } });
const now = () => Math.floor(Date.now() / 1000);

describe('signatureHeaders', () => {
  it('signs as the Standard Webhooks library verifies', () => {
    const secret = newWebhookSecret();
    const headers = signatureHeaders({ id: 'evt_01JABC', timestampSeconds: now(), body, secrets: [secret] });
    expect(headers['webhook-id']).toBe('evt_01JABC');
    expect(headers['webhook-timestamp']).toMatch(/^\d+$/);
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(new Webhook(secret).verify(body, { ...headers })).toEqual(JSON.parse(body));
    // The library's own signature is the same string.
    expect(headers['webhook-signature']).toBe(
      new Webhook(secret).sign('evt_01JABC', new Date(Number(headers['webhook-timestamp']) * 1000), body),
    );
  });

  it('during a rotation carries one signature per secret, newest first, each verifying on its own', () => {
    const newer = newWebhookSecret();
    const older = newWebhookSecret();
    const headers = signatureHeaders({ id: 'evt_2', timestampSeconds: now(), body, secrets: [newer, older] });
    const [first, second, ...rest] = headers['webhook-signature'].split(' ');
    expect(rest).toEqual([]);
    const at = new Date(Number(headers['webhook-timestamp']) * 1000);
    expect(first).toBe(new Webhook(newer).sign('evt_2', at, body));
    expect(second).toBe(new Webhook(older).sign('evt_2', at, body));
    expect(() => new Webhook(newer).verify(body, { ...headers })).not.toThrow();
    expect(() => new Webhook(older).verify(body, { ...headers })).not.toThrow();
    expect(() => new Webhook(newWebhookSecret()).verify(body, { ...headers })).toThrow(WebhookVerificationError);
  });

  it('does not verify once the body, the id or the timestamp changed', () => {
    const secret = newWebhookSecret();
    const ts = now();
    const headers = signatureHeaders({ id: 'evt_3', timestampSeconds: ts, body, secrets: [secret] });
    const hook = new Webhook(secret);
    expect(() => hook.verify(`${body} `, { ...headers })).toThrow(WebhookVerificationError);
    expect(() => hook.verify(body, { ...headers, 'webhook-id': 'evt_4' })).toThrow(WebhookVerificationError);
    expect(() => hook.verify(body, { ...headers, 'webhook-timestamp': String(ts - 1) })).toThrow(WebhookVerificationError);
  });

  it('signs the bytes of a Buffer body like its text, and whole seconds', () => {
    const secret = newWebhookSecret();
    const ts = now() + 0.75;
    const fromText = signatureHeaders({ id: 'evt_5', timestampSeconds: ts, body, secrets: [secret] });
    const fromBytes = signatureHeaders({ id: 'evt_5', timestampSeconds: ts, body: Buffer.from(body), secrets: [secret] });
    expect(fromBytes).toEqual(fromText);
    expect(fromText['webhook-timestamp']).toBe(String(Math.floor(ts)));
  });

  it('refuses no secret, or one that is not a whsec_ secret', () => {
    expect(() => signatureHeaders({ id: 'evt_6', timestampSeconds: now(), body, secrets: [] })).toThrow(/at least one/);
    expect(() => signatureHeaders({ id: 'evt_6', timestampSeconds: now(), body, secrets: ['plain'] })).toThrow(/whsec_/);
    expect(() => signatureHeaders({ id: 'evt_6', timestampSeconds: now(), body, secrets: ['whsec_'] })).toThrow(/key/);
  });
});
