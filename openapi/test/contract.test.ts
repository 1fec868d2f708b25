import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deref, loadSpec } from '../generate/spec.js';

const spec = loadSpec(join(import.meta.dirname, '..', 'cloudphone.yaml'));
const document = spec.document;

function validator() {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats.default(ajv);
  return ajv;
}

interface ExampleCase {
  where: string;
  schema: Record<string, unknown>;
  example: unknown;
}

function mediaExamples(): ExampleCase[] {
  const cases: ExampleCase[] = [];
  for (const [path, item] of Object.entries<Record<string, any>>(document.paths)) {
    for (const [method, op] of Object.entries<any>(item)) {
      if (method === 'parameters') continue;
      const bodies: [string, any][] = [];
      if (op.requestBody) bodies.push(['request', deref(document, op.requestBody)]);
      for (const [status, response] of Object.entries<any>(op.responses)) bodies.push([status, deref(document, response)]);
      for (const [label, body] of bodies) {
        for (const [type, media] of Object.entries<any>(body.content ?? {})) {
          const examples = media.example !== undefined ? [media.example] : Object.values<any>(media.examples ?? {}).map((e) => e.value);
          for (const example of examples) {
            cases.push({ where: `${method.toUpperCase()} ${path} ${label} ${type}`, schema: media.schema, example });
          }
        }
      }
    }
  }
  return cases;
}

describe('the contract', () => {
  it('has an example for every request and response body, and each one validates against its schema', () => {
    const cases = mediaExamples();
    expect(cases.length).toBeGreaterThan(40);
    const ajv = validator();
    const failures = cases.flatMap((c) => {
      const validate = ajv.compile(c.schema);
      return validate(c.example) ? [] : [`${c.where}: ${ajv.errorsText(validate.errors)}`];
    });
    expect(failures).toEqual([]);
  });

  it('has a valid example for every parameter', () => {
    const ajv = validator();
    const failures = spec.operations.flatMap((op) =>
      op.parameters.flatMap((p) => {
        if (p.example === undefined) return [`${op.id} ${p.name}: no example`];
        const validate = ajv.compile(p.schema);
        return validate(p.example) ? [] : [`${op.id} ${p.name}: ${ajv.errorsText(validate.errors)}`];
      }),
    );
    expect(failures).toEqual([]);
  });

  it('answers every error as application/problem+json', () => {
    const failures = spec.operations.flatMap((op) => {
      const responses = deref(document, document.paths[op.path][op.method.toLowerCase()].responses) as Record<string, any>;
      return Object.entries(responses)
        .filter(([status]) => /^[45]/.test(status))
        .filter(([, r]) => Object.keys(r.content ?? {}).join() !== 'application/problem+json')
        .map(([status]) => `${op.id} ${status}`);
    });
    expect(failures).toEqual([]);
  });

  it('documents 401 and 403 on every authenticated operation and neither on public ones', () => {
    for (const op of spec.operations) {
      if (op.access) expect(op.errorStatuses, op.id).toEqual(expect.arrayContaining([401, 403]));
      else expect(op.errorStatuses, op.id).not.toContain(403);
    }
  });

  it('documents 503 with Retry-After on every operation, naming database_unavailable and service_unavailable', () => {
    const failures = spec.operations.flatMap((op) => {
      const responses = document.paths[op.path][op.method.toLowerCase()].responses as Record<string, unknown>;
      const unavailable = responses['503'] === undefined ? undefined : deref<any>(document, responses['503']);
      const complete =
        unavailable?.headers?.['Retry-After'] !== undefined &&
        ['database_unavailable', 'service_unavailable'].every((code) => unavailable.description.includes(`\`${code}\``));
      return complete ? [] : [op.id];
    });
    expect(failures).toEqual([]);
  });

  it('maps every event type of the Event union to a schema whose type is that constant', () => {
    const event = document.components.schemas.Event;
    const mapping = event.discriminator.mapping as Record<string, string>;
    expect(Object.keys(mapping).length).toBe(event.oneOf.length);
    for (const [type, ref] of Object.entries(mapping)) {
      const schema = deref<unknown>(document, { $ref: ref }) as { allOf: Array<{ properties?: { type?: { const?: string } } }> };
      const constant = schema.allOf.map((part) => part.properties?.type?.const).find(Boolean);
      expect(constant, ref).toBe(type);
    }
  });

  it('names no IP address but loopback and the documentation ranges, so nothing derived from it reaches a real host', () => {
    expect(spec.files.length).toBeGreaterThan(1);
    const text = spec.files.map((file) => readFileSync(file, 'utf8')).join('\n');
    const candidates = [
      ...text.matchAll(/(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])/g),
      ...text.matchAll(/(?<![\w:.])[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?![\w:])/gi),
    ].map((match) => match[0]);
    const named = candidates.filter((address) => isIP(address) !== 0);
    expect(named.length).toBeGreaterThan(0);
    expect(named.filter((address) => !harmlessAddress(address))).toEqual([]);
  });
});

/** Loopback, and the ranges reserved for documentation (RFC 5737, RFC 3849), which no real host has. */
function harmlessAddress(address: string): boolean {
  if (isIP(address) === 6) return address === '::1' || /^2001:db8:/i.test(address);
  return /^(127\.|192\.0\.2\.|198\.51\.100\.|203\.0\.113\.)/.test(address);
}
