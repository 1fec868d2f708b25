import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from './errors.js';
import { escapePointer } from './json-pointer.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * What is wrong with a string as text the server can keep, or `null`: a surrogate without its pair, or U+0000,
 * which PostgreSQL's text cannot hold (refused on SQLite too, so both engines take the same requests).
 */
function textFault(text: string): string | null {
  if (LONE_SURROGATE.test(text)) return 'is not well-formed Unicode (a lone surrogate)';
  if (text.includes('\u0000')) return 'holds U+0000 (NUL), which text cannot hold';
  return null;
}

/** The JSON pointer of the first string or key in `value` that is not text the server can keep, and why; or `null`. */
function faultAt(value: unknown, pointer = ''): { field: string; message: string } | null {
  if (typeof value === 'string') {
    const message = textFault(value);
    return message === null ? null : { field: pointer, message };
  }
  if (value === null || typeof value !== 'object') return null;
  for (const [key, item] of Object.entries(value)) {
    const at = `${pointer}/${escapePointer(key)}`;
    const message = textFault(key);
    if (message !== null) return { field: at, message };
    const found = faultAt(item, at);
    if (found !== null) return found;
  }
  return null;
}

function faultyBody(fault: { field: string; message: string }): ApiError {
  return new ApiError('invalid_encoding', 'The request body holds a string that is not well-formed Unicode or holds U+0000.', {
    errors: [fault],
  });
}

/** Decodes one percent-encoded URL component strictly: its bytes must be UTF-8 of well-formed Unicode without U+0000. */
function decodesStrictly(component: string): boolean {
  try {
    return textFault(decodeURIComponent(component.replace(/\+/g, ' '))) === null;
  } catch {
    return false;
  }
}

/** Throws 400 `invalid_encoding` unless every path segment and query name and value of `url` decodes as text. */
function assertUrlEncoding(url: string): void {
  const at = url.indexOf('?');
  const path = at < 0 ? url : url.slice(0, at);
  const query = at < 0 ? '' : url.slice(at + 1);
  const components = [...path.split('/'), ...query.split(/[&=]/)];
  if (!components.every(decodesStrictly)) {
    throw new ApiError('invalid_encoding', 'The URL holds a percent-encoded sequence that is not UTF-8, or U+0000.');
  }
}

/**
 * Text reaches the API as UTF-8 of well-formed Unicode or not at all (400 `invalid_encoding`), before anything is
 * routed to a handler: JSON bodies are decoded strictly (a lenient decoder would turn bad bytes into U+FFFD and
 * store them), and neither a body's strings (a `\ud800` escape) nor the URL's components may hold lone surrogates
 * or U+0000.
 * Fastify's own JSON parser still does the parsing, with its defences against prototype poisoning.
 */
export function registerEncodingChecks(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request: FastifyRequest, body, done) => {
    let text: string;
    try {
      text = utf8.decode(body as Buffer);
    } catch {
      done(new ApiError('invalid_encoding', 'The request body is not valid UTF-8.'), undefined);
      return;
    }
    parseJson(request, text, (error: Error | null, value?: unknown) => {
      if (error) return done(error, undefined);
      const fault = faultAt(value);
      if (fault !== null) return done(faultyBody(fault), undefined);
      done(null, value);
    });
  });
  app.addHook('onRequest', async (request) => {
    assertUrlEncoding(request.url);
  });
}
