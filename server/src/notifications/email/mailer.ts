import nodemailer, { type NodemailerError, type Transporter } from 'nodemailer';
import type { RenderedEmail } from './templates.js';

export interface OutgoingEmail extends RenderedEmail {
  to: string;
}

/** Hands emails to a mail server. */
export interface Mailer {
  /** Resolves once the server accepted the email; rejects with the reason it did not. */
  send(email: OutgoingEmail): Promise<void>;
  close(): void;
}

/** How long each step of a conversation with the mail server may take, so that a stuck server fails an attempt. */
const CONNECTION_TIMEOUT_MS = 10_000;
const GREETING_TIMEOUT_MS = 10_000;
const SOCKET_TIMEOUT_MS = 30_000;

/** An SMTP URL fit for logs: its scheme, user, host and port, never its password. */
export function describeSmtpUrl(text: string): string {
  try {
    const url = new URL(text);
    const user = url.username === '' ? '' : `${url.username}@`;
    return `${url.protocol}//${user}${url.host}`;
  } catch {
    return '(not a URL)';
  }
}

/**
 * Whether the mail server refused this email for good (the recipient or the message itself, with a 5xx reply):
 * sending it again would be refused again. Connection failures, timeouts, 4xx replies and refused credentials
 * (an administrator may fix them) are worth another attempt.
 */
export function isPermanentFailure(error: unknown): boolean {
  const failure = error as NodemailerError;
  return failure.permanent === true && (failure.code === 'EENVELOPE' || failure.code === 'EMESSAGE');
}

/**
 * Sends over SMTP to the server of an `smtp://` or `smtps://` URL (TLS from the start), whose user and password
 * are the credentials; `smtp://` upgrades with STARTTLS when the server offers it.
 */
export class SmtpMailer implements Mailer {
  readonly #transport: Transporter;

  constructor(deps: { url: string; from: string }) {
    this.#transport = nodemailer.createTransport(
      {
        url: deps.url,
        connectionTimeout: CONNECTION_TIMEOUT_MS,
        greetingTimeout: GREETING_TIMEOUT_MS,
        socketTimeout: SOCKET_TIMEOUT_MS,
      },
      { from: deps.from },
    );
  }

  async send(email: OutgoingEmail): Promise<void> {
    await this.#transport.sendMail({ to: email.to, subject: email.subject, text: email.text, html: email.html });
  }

  close(): void {
    this.#transport.close();
  }
}
