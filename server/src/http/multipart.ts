import type { IncomingHttpHeaders } from 'node:http';
import { PassThrough, pipeline, type Readable } from 'node:stream';
import { Busboy, type BusboyFileStream, type BusboyHeaders, type BusboyInstance } from '@fastify/busboy';
import { ApiError } from './errors.js';

/** Whether a `Content-Type` header is `multipart/form-data` (with its boundary parameter, or without). */
export function isMultipart(contentType: string | undefined): boolean {
  return /^multipart\/form-data\s*(;|$)/i.test(contentType ?? '');
}

/** The form part that carries the file, as the contract names it (`curl -F file=@app.apk`). */
const FILE_PART = 'file';

/** Text fields are skipped, but only a few small ones: the form is a wrapper for one file, not a document. */
const LIMITS = { files: 1, fields: 16, fieldSize: 64 * 1024, parts: 32, headerPairs: 32 };

/** What a form may add to its file's bytes (text fields, part headers, boundaries): its body may be this larger. */
export const FORM_OVERHEAD_BYTES = LIMITS.fields * LIMITS.fieldSize + LIMITS.parts * 8 * 1024;

const fileNames = new WeakMap<Readable, string>();

/** The file name the form gave the file part of `body`, when `body` came from `filePartOf` and it gave one. */
export function formFileName(body: Readable): string | null {
  return fileNames.get(body) ?? null;
}

function formError(message: string): ApiError {
  return new ApiError('validation_failed', message, { errors: [{ field: FILE_PART, message }] });
}

/**
 * The bytes of the `file` part of a `multipart/form-data` body, streamed as they arrive (never buffered whole; the
 * consumer's size limit applies to them). Resolves at the start of the file part; rejects with `validation_failed`
 * when the form ends without one, names it otherwise, or is malformed before it. After that, a second file part or
 * a malformed rest fails the stream with `validation_failed` (so the consumer discards what it received), and the
 * stream ends only once the whole form is read. Closing the stream early abandons `body`.
 */
export function filePartOf(body: Readable, headers: IncomingHttpHeaders): Promise<Readable> {
  return new Promise<Readable>((resolve, reject) => {
    let form: BusboyInstance;
    try {
      form = Busboy({ headers: headers as BusboyHeaders, limits: LIMITS });
    } catch (error) {
      reject(formError(`The multipart body cannot be read: ${error instanceof Error ? error.message : String(error)}.`));
      return;
    }
    const out = new PassThrough();
    // The form may fail the stream before its consumer listens (a second file part in the same chunk as the first):
    // the consumer still gets the error, from the stream's `errored` state.
    out.on('error', () => undefined);
    let file: BusboyFileStream | undefined;
    let fileEnded = false;
    let formEnded = false;
    let failed = false;
    const fail = (message: string) => {
      failed = true;
      if (file === undefined) reject(formError(message));
      else out.destroy(formError(message));
    };
    const endWhenDone = () => {
      if (fileEnded && formEnded) out.end();
    };
    form.on('file', (name, stream, fileName) => {
      if (name !== FILE_PART) {
        stream.resume();
        fail(`The form's file part is named '${name}'; the contract names it '${FILE_PART}'.`);
        return;
      }
      file = stream;
      stream.on('error', malformed);
      if (fileName !== '' && fileName.length <= 255) fileNames.set(out, fileName);
      stream.on('end', () => {
        fileEnded = true;
        endWhenDone();
      });
      stream.pipe(out, { end: false });
      // The consumer stopped reading (a size limit, a shutdown): nothing reads the rest of the body either.
      out.once('close', () => {
        if (!out.writableFinished && !failed) form.destroy();
      });
      resolve(out);
    });
    form.on('filesLimit', () => fail(`The form has more than one file part; send the APK as its only one.`));
    form.on('partsLimit', () => fail(`The form has more than ${LIMITS.parts} parts.`));
    form.on('fieldsLimit', () => fail(`The form has more than ${LIMITS.fields} text fields.`));
    const malformed = (error: unknown) =>
      fail(`The multipart body is malformed: ${error instanceof Error ? error.message : String(error)}.`);
    form.on('error', malformed);
    form.on('finish', () => {
      formEnded = true;
      if (file === undefined) fail(`The form has no file part named '${FILE_PART}'.`);
      else endWhenDone();
    });
    body.on('error', (error) => {
      if (file === undefined) reject(formError('The request body ended before it was complete.'));
      else out.destroy(error);
    });
    // Through `pipeline`, whose ending of a server request leaves its socket to the response.
    pipeline(body, form, () => undefined);
  });
}
