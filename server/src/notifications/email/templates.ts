import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NOTIFICATION_KINDS, type NotificationKind } from '../inbox/derive.js';

/** Each kind of notification's human name, for the footer of its emails. */
const NOTIFICATION_LABELS: Record<NotificationKind, string> = {
  'lease.granted': 'lease granted',
  'lease.expiring': 'lease expiring',
  'lease.expired': 'lease expired',
  'lease.ended': 'lease ended',
  'install.failed': 'install failed',
  'device.offline': 'device offline',
  'budget.threshold': 'budget threshold',
  'budget.exhausted': 'budget exhausted',
  'quota.exceeded': 'quota exceeded',
  'host.unreachable': 'host unreachable',
  'webhook.disabled': 'webhook disabled',
};

/** The mail that asks a user to confirm their address: not a notification, sent whatever their preferences. */
export const VERIFICATION_KIND = 'email.verification';

export type EmailKind = NotificationKind | typeof VERIFICATION_KIND;

/** Every kind a template exists for; the only names ever looked up in the templates folder. */
export const EMAIL_KINDS: readonly EmailKind[] = [...NOTIFICATION_KINDS, VERIFICATION_KIND];

function isEmailKind(kind: string): kind is EmailKind {
  return (EMAIL_KINDS as readonly string[]).includes(kind);
}

/** What a queued email says, as stored with it. */
export interface EmailContent {
  kind: string;
  title: string;
  body: string;
  link: string | null;
  /** Further values the templates may name (`{{lease.id}}` reads `data.lease.id`). */
  data: Record<string, unknown>;
}

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
}

/** A queued email of a kind no template exists for: sending it again cannot help. */
export class UnknownEmailKindError extends Error {
  constructor(kind: string) {
    super(`no email template for the kind ${JSON.stringify(kind)}`);
    this.name = 'UnknownEmailKindError';
  }
}

const PARTS = { subject: 'subject.txt', text: 'txt', html: 'html' } as const;
type Part = keyof typeof PARTS;

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => HTML_ESCAPES[char]!);
}

/** A header line: folded whitespace, so that no value can end the header or add another. */
function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** The value at a dotted path of `values`, as text; empty when absent or not a scalar. */
function lookUp(values: Record<string, unknown>, path: string): string {
  let value: unknown = values;
  for (const key of path.split('.')) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, key)) return '';
    value = (value as Record<string, unknown>)[key];
  }
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : '';
}

/** Replaces each `{{name}}` (a dotted path) by its value, passed through `escape`. */
function fillPlaceholders(template: string, values: Record<string, unknown>, escape: (text: string) => string): string {
  return template.replace(/\{\{\s*([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)\s*\}\}/g, (_, path: string) =>
    escape(lookUp(values, path)),
  );
}

function paragraphs(text: string): string {
  return text
    .split(/\n{2,}/)
    .map((paragraph) => `<p>${escapeHtml(paragraph).replace(/\n/g, '<br>')}</p>`)
    .join('\n');
}

function htmlPage(title: string, content: string): string {
  return [
    '<!doctype html>',
    '<html><head><meta charset="utf-8">',
    `<title>${escapeHtml(title)}</title></head>`,
    '<body style="font-family: sans-serif; line-height: 1.5; max-width: 40em">',
    content,
    '</body></html>',
    '',
  ].join('\n');
}

function linkButton(link: string, label: string): string {
  return `<p><a href="${escapeHtml(link)}">${escapeHtml(label)}</a></p>`;
}

function builtIn(kind: EmailKind, content: EmailContent): RenderedEmail {
  const { title, body, link } = content;
  if (kind === VERIFICATION_KIND) {
    const intro = 'Confirm that this address is yours to receive cloudphone notifications by email.';
    const expiry = 'The link works once and expires in 24 hours. If you did not ask for it, ignore this email.';
    return {
      subject: 'Verify your email address for cloudphone',
      text: `${intro}\n\n${link ?? ''}\n\n${expiry}\n`,
      html: htmlPage(
        'Verify your email address',
        [`<p>${escapeHtml(intro)}</p>`, linkButton(link ?? '', 'Verify this address'), `<p>${escapeHtml(expiry)}</p>`].join('\n'),
      ),
    };
  }
  const footer =
    `You receive this email because email notifications for "${NOTIFICATION_LABELS[kind]}" are on; ` +
    'you can turn them off in your notification preferences.';
  const text = [title, body, ...(link === null ? [] : [`Open: ${link}`]), `--\n${footer}`].join('\n\n');
  const html = [
    `<h2>${escapeHtml(title)}</h2>`,
    paragraphs(body),
    ...(link === null ? [] : [linkButton(link, 'Open in cloudphone')]),
    `<hr><p style="color: #666; font-size: smaller">${escapeHtml(footer)}</p>`,
  ].join('\n');
  return { subject: `[cloudphone] ${title}`, text: `${text}\n`, html: htmlPage(title, html) };
}

/**
 * Renders queued emails: each kind has a built-in subject, text and HTML part, and an admin may replace any of
 * them with a file `<dataDir>/templates/email/<kind>.subject.txt`, `<kind>.txt` or `<kind>.html` whose `{{name}}`
 * placeholders name `title`, `body`, `link`, `kind`, `publicUrl` or a value of the email's data (escaped in HTML).
 * Files are read at every send, so an edit applies to the next email without a restart. A link that is a path
 * (a notification's subject) becomes a URL under the server's public URL.
 */
export class EmailTemplates {
  readonly #folder: string;
  readonly #publicUrl: () => string;

  constructor(deps: { dataDir: string; publicUrl: () => string }) {
    this.#folder = join(deps.dataDir, 'templates', 'email');
    this.#publicUrl = () => deps.publicUrl().replace(/\/+$/, '');
  }

  async render(email: EmailContent): Promise<RenderedEmail> {
    const { kind } = email;
    if (!isEmailKind(kind)) throw new UnknownEmailKindError(kind);
    const link = email.link?.startsWith('/') === true ? `${this.#publicUrl()}${email.link}` : email.link;
    const content = { ...email, link };
    const values = {
      ...content.data,
      kind,
      title: content.title,
      body: content.body,
      link: link ?? '',
      publicUrl: this.#publicUrl(),
    };
    const fallback = builtIn(kind, content);
    const [subject, text, html] = await Promise.all(
      (Object.keys(PARTS) as Part[]).map(async (part) => {
        const template = await this.#override(kind, part);
        if (template === null) return fallback[part];
        return fillPlaceholders(template, values, part === 'html' ? escapeHtml : (value) => value);
      }),
    );
    return { subject: oneLine(subject!), text: text!, html: html! };
  }

  async #override(kind: EmailKind, part: Part): Promise<string | null> {
    try {
      return await readFile(join(this.#folder, `${kind}.${PARTS[part]}`), 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      throw error;
    }
  }
}
