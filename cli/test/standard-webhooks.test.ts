import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { generateSecret, secretKey, signedHeaders } from '../src/lib/standard-webhooks.js';

const body = JSON.stringify({ id: 'evt_01JDX3N2R1F4H7K0M3P6S9V2YB', type: 'lease.granted', data: { note: 'é€ "quoted"' } });

describe('Standard Webhooks signing', () => {
  it('generates whsec_ secrets of 24 random bytes', () => {
    const a = generateSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    expect(secretKey(a)).toHaveLength(24);
    expect(generateSecret()).not.toBe(a);
  });

  it('signs deliveries the reference library verifies', () => {
    const secret = generateSecret();
    const headers = signedHeaders(secretKey(secret)!, 'evt_01JDX3N2R1F4H7K0M3P6S9V2YB', body);
    expect(headers['webhook-id']).toBe('evt_01JDX3N2R1F4H7K0M3P6S9V2YB');
    expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body));
  });

  it('gives the reference library signature for the same id, time and body', () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const at = new Date('2026-12-07T21:00:00.750Z');
    const headers = signedHeaders(secretKey(secret)!, 'msg_p5jXN8AQM9LWM0D4loKWxJek', body, at);
    expect(headers['webhook-timestamp']).toBe(String(Date.UTC(2026, 11, 7, 21) / 1000));
    expect(headers['webhook-signature']).toBe(new Webhook(secret).sign('msg_p5jXN8AQM9LWM0D4loKWxJek', at, body));
  });

  it('is refused by a receiver with another secret, or for another body', () => {
    const headers = signedHeaders(secretKey(generateSecret())!, 'evt_1', body);
    expect(() => new Webhook(generateSecret()).verify(body, headers)).toThrow(WebhookVerificationError);
    const secret = generateSecret();
    const signed = signedHeaders(secretKey(secret)!, 'evt_1', body);
    expect(() => new Webhook(secret).verify(`${body} `, signed)).toThrow(WebhookVerificationError);
  });

  it('takes only whsec_ and padded base64 as a secret', () => {
    expect(secretKey('whsec_AAECAw==')).toEqual(Buffer.from([0, 1, 2, 3]));
    for (const bad of ['', 'whsec_', 'AAECAw==', 'whsec_AAECAw', 'whsec_AA*CAw==', 'WHSEC_AAECAw==']) {
      expect(secretKey(bad), bad).toBeUndefined();
    }
  });
});
