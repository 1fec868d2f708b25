import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export const SMTP_USER = 'cloudphone';
export const SMTP_PASSWORD = 'smtp-password-for-tests';

export interface ReceivedMail {
  /** The envelope's recipients, as the client gave them in RCPT TO. */
  recipients: string[];
  /** The user the client authenticated as. */
  user: string | undefined;
  /** Whether the message came over TLS. */
  secure: boolean;
  mail: ParsedMail;
}

/**
 * A real SMTP server on 127.0.0.1 (a random port) that requires authentication and keeps what it receives, parsed;
 * a test can make it refuse the next messages with a reply of its choice.
 */
export interface TestSmtp {
  /**
   * `smtp://user:password@127.0.0.1:<port>`, or with `secure` `smtps://…` accepting the server's self-signed
   * certificate.
   */
  url: string;
  received: ReceivedMail[];
  /** Resolves with the `count`-th message received (1 is the first), waiting for it if need be. */
  nth(count: number, timeoutMs?: number): Promise<ReceivedMail>;
  /** The next messages are refused with these replies, one each, before messages are accepted again. */
  refuse(...replies: { code: number; message: string }[]): void;
  /** Delays the answer to each message, to keep several deliveries open at once. */
  delayMs: number;
  /** The most messages that were being received at once. */
  maxConcurrent(): number;
  close(): Promise<void>;
}

export async function startTestSmtp(options: { secure?: boolean } = {}): Promise<TestSmtp> {
  const secure = options.secure === true;
  const received: ReceivedMail[] = [];
  const refusals: { code: number; message: string }[] = [];
  const waiting = new Set<() => void>();
  let open = 0;
  let maxOpen = 0;
  const state = { delayMs: 0 };

  const server = new SMTPServer({
    // TLS from the start with smtp-server's built-in certificate for localhost, or plain text on loopback.
    secure,
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: !secure,
    authOptional: false,
    disableReverseLookup: true,
    closeTimeout: 500,
    logger: false,
    onAuth(auth, _session, callback) {
      if (auth.username === SMTP_USER && auth.password === SMTP_PASSWORD) {
        callback(null, { user: auth.username });
        return;
      }
      callback(new Error('Invalid username or password'));
    },
    onData(stream, session, callback) {
      open += 1;
      maxOpen = Math.max(maxOpen, open);
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        setTimeout(() => {
          open -= 1;
          const refusal = refusals.shift();
          if (refusal !== undefined) {
            callback(Object.assign(new Error(refusal.message), { responseCode: refusal.code }));
            return;
          }
          void simpleParser(Buffer.concat(chunks)).then(
            (mail) => {
              received.push({
                recipients: session.envelope.rcptTo.map((rcpt) => rcpt.address),
                user: session.user as string | undefined,
                secure: session.secure,
                mail,
              });
              for (const wake of waiting) wake();
              callback(null, 'OK: queued');
            },
            (error: unknown) => callback(error as Error),
          );
        }, state.delayMs);
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;

  return {
    url: secure
      ? `smtps://${SMTP_USER}:${SMTP_PASSWORD}@127.0.0.1:${port}/?tls.rejectUnauthorized=false`
      : `smtp://${SMTP_USER}:${SMTP_PASSWORD}@127.0.0.1:${port}`,
    received,
    async nth(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (received.length < count) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`expected ${count} messages, received ${received.length}`);
        await new Promise<void>((resolve) => {
          const wake = () => {
            waiting.delete(wake);
            clearTimeout(timer);
            resolve();
          };
          const timer = setTimeout(wake, left);
          waiting.add(wake);
        });
      }
      return received[count - 1]!;
    },
    refuse(...replies) {
      refusals.push(...replies);
    },
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(ms: number) {
      state.delayMs = ms;
    },
    maxConcurrent: () => maxOpen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
