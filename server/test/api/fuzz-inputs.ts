import fc from 'fast-check';

/**
 * fast-check arbitraries derived from the contract's JSON Schemas (the subset the contract uses: types, const, enum,
 * patterns, lengths, ranges, items, properties, additionalProperties, propertyNames, allOf, anyOf, oneOf, formats).
 * `validValue` aims at values the schema accepts and `invalidValue` at values it refuses; the fuzz suite checks each
 * with Ajv, so an aim that misses is classified by what it is, not by what it was meant to be.
 */

export type Schema = Record<string, any>;

/** Values for strings with a given pattern (ids of the fixture, loopback host addresses), else a generated one. */
export type Overrides = (schema: Schema, path: readonly string[]) => fc.Arbitrary<unknown> | undefined;

const MAX_ITEMS = 4;
const MAX_PROPERTIES = 4;

function typesOf(schema: Schema): string[] {
  if (Array.isArray(schema.type)) return schema.type;
  if (typeof schema.type === 'string') return [schema.type];
  if (schema.properties || schema.additionalProperties !== undefined || schema.required) return ['object'];
  return [];
}

/** `allOf` of object schemas as one object schema (properties merged; closed when any part is). */
function merged(schema: Schema): Schema {
  if (!Array.isArray(schema.allOf)) return schema;
  const { allOf, unevaluatedProperties, ...rest } = schema;
  const out: Schema = { ...rest, type: 'object', properties: { ...rest.properties } };
  for (const part of allOf as Schema[]) {
    const flat = merged(part);
    Object.assign(out.properties, flat.properties ?? {});
    if (flat.required) out.required = [...(out.required ?? []), ...flat.required];
  }
  if (unevaluatedProperties === false) out.additionalProperties = false;
  return out;
}

function stringValue(schema: Schema): fc.Arbitrary<string> {
  const minLength = schema.minLength ?? 0;
  const maxLength = schema.maxLength ?? 64;
  if (schema.format === 'date-time') {
    return fc
      .date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2099-12-31T00:00:00Z'), noInvalidDate: true })
      .map((d) => d.toISOString());
  }
  // One character class repeated (`^[A-Za-z0-9_-]+$`): strings of that class within the limits, which strings
  // generated from the pattern and then filtered by length would hardly ever reach when the minimum is long.
  const repeated = typeof schema.pattern === 'string' ? /^\^(\[[^\]]+\])\+\$$/.exec(schema.pattern) : null;
  if (repeated) {
    const unit = fc.stringMatching(new RegExp(`^${repeated[1]}$`, 'u'));
    return fc.string({ unit, minLength, maxLength: Math.min(maxLength, minLength + 12) });
  }
  if (typeof schema.pattern === 'string') {
    return fc
      .stringMatching(new RegExp(schema.pattern, 'u'), { size: 'small' })
      .filter((s) => [...s].length >= minLength && [...s].length <= maxLength);
  }
  // Short strings of any Unicode but U+0000 (refused as invalid_encoding), and strings exactly as long as allowed:
  // limits are where server and contract drift.
  return fc.oneof(
    fc.string({ unit: 'binary', minLength, maxLength: Math.min(maxLength, minLength + 12) }).map((s) => s.replaceAll('\u0000', '\u0001')),
    fc.string({ unit: 'grapheme-ascii', minLength: maxLength, maxLength }),
  );
}

function integerValue(schema: Schema): fc.Arbitrary<number> {
  const min = schema.minimum ?? -1_000_000;
  const max = schema.maximum ?? 1_000_000;
  return fc.oneof(fc.integer({ min, max }), fc.constantFrom(min, max));
}

function objectValue(schema: Schema, overrides: Overrides, path: readonly string[]): fc.Arbitrary<Record<string, unknown>> {
  const properties: Record<string, Schema> = schema.properties ?? {};
  const required = new Set<string>(schema.required ?? []);
  const model = Object.fromEntries(
    Object.entries(properties).map(([name, sub]) => [name, validValue(sub, overrides, [...path, name])]),
  );
  const record = fc.record(model, { requiredKeys: Object.keys(properties).filter((name) => required.has(name)) });
  const extra = schema.additionalProperties;
  if (extra === undefined || extra === false || extra === true) return record;
  const keys = stringValue({ type: 'string', ...schema.propertyNames });
  const maxKeys = Math.min(schema.maxProperties ?? MAX_PROPERTIES, MAX_PROPERTIES);
  return fc
    .tuple(record, fc.dictionary(keys, validValue(extra, overrides, [...path, '*']), { maxKeys }))
    .map(([fixed, free]) => ({ ...free, ...fixed }));
}

/** A value meant to satisfy `schema`. */
export function validValue(input: Schema, overrides: Overrides, path: readonly string[] = []): fc.Arbitrary<unknown> {
  const schema = merged(input);
  const override = overrides(schema, path);
  if (override) return override;
  if ('const' in schema) return fc.constant(schema.const);
  if (Array.isArray(schema.enum)) return fc.constantFrom(...schema.enum);
  const alternatives = schema.oneOf ?? schema.anyOf;
  if (Array.isArray(alternatives)) {
    const { oneOf, anyOf, ...rest } = schema;
    return fc.oneof(...(alternatives as Schema[]).map((alt) => validValue({ ...rest, ...alt }, overrides, path)));
  }
  const types = typesOf(schema);
  if (types.length > 1) return fc.oneof(...types.map((type) => validValue({ ...schema, type }, overrides, path)));
  switch (types[0]) {
    case 'null':
      return fc.constant(null);
    case 'boolean':
      return fc.boolean();
    case 'integer':
      return integerValue(schema);
    case 'number':
      return fc.double({ min: schema.minimum ?? -1e6, max: schema.maximum ?? 1e6, noNaN: true });
    case 'string':
      return stringValue(schema);
    case 'array': {
      const items = validValue(schema.items ?? {}, overrides, [...path, '0']);
      const constraints = { minLength: schema.minItems ?? 0, maxLength: Math.min(schema.maxItems ?? MAX_ITEMS, MAX_ITEMS) };
      return schema.uniqueItems
        ? fc.uniqueArray(items, { ...constraints, selector: (v) => JSON.stringify(v) })
        : fc.array(items, constraints);
    }
    case 'object':
      return objectValue(schema, overrides, path);
    default:
      return fc.constant('x');
  }
}

/** A string that is not text the server keeps: a lone surrogate or U+0000 somewhere in it. */
export const unkeptText = fc
  .tuple(fc.string({ maxLength: 4 }), fc.constantFrom('\uD800', '\uDBFF', '\uDC00', '\uDFFF', '\u0000'), fc.string({ maxLength: 4 }))
  .map(([a, s, b]) => `${a}${s}${b}`);

/** A value meant to break `schema`: the wrong type, or a limit, pattern or enum exceeded. */
export function invalidValue(input: Schema): fc.Arbitrary<unknown> {
  const schema = merged(input);
  const wrongType = fc.constantFrom<unknown>(null, true, 12.5, 'x', [], {}, -1);
  const broken: fc.Arbitrary<unknown>[] = [wrongType, unkeptText];
  if (Array.isArray(schema.enum)) broken.push(fc.constant('not-in-the-enum'));
  if (typeof schema.maxLength === 'number') broken.push(fc.constant('y'.repeat(schema.maxLength + 1)));
  if (typeof schema.minLength === 'number' && schema.minLength > 0) broken.push(fc.constant(''));
  if (typeof schema.pattern === 'string') broken.push(fc.constantFrom(' ', '../..', 'a b', '%00', '\u00e9'));
  if (typeof schema.maximum === 'number') broken.push(fc.constant(schema.maximum + 1));
  if (typeof schema.minimum === 'number') broken.push(fc.constant(schema.minimum - 1));
  if (typesOf(schema).includes('integer')) broken.push(fc.constant(1.5));
  if (typeof schema.maxItems === 'number') broken.push(fc.constant(Array.from({ length: schema.maxItems + 1 }, (_, i) => i)));
  return fc.oneof(...broken);
}
