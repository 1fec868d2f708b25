import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NOTIFICATION_KINDS } from '../../../src/notifications/inbox/derive.js';
import {
  EMAIL_KINDS,
  EmailTemplates,
  UnknownEmailKindError,
  VERIFICATION_KIND,
  type EmailContent,
} from '../../../src/notifications/email/templates.js';

const PUBLIC_URL = 'http://127.0.0.1:8080/';

let dataDir: string;
let templates: EmailTemplates;

beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-templates-'));
  templates = new EmailTemplates({ dataDir, publicUrl: () => PUBLIC_URL });
});

afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

function content(overrides: Partial<EmailContent> = {}): EmailContent {
  return {
    kind: 'budget.exhausted',
    title: 'Budget "team" <spent>',
    body: 'First paragraph & more.\n\nSecond one.',
    link: '/v1/budgets/bdg_1',
    data: { budget: { id: 'bdg_1', name: '<b>team</b>' }, spent: 1200 },
    ...overrides,
  };
}

function override(name: string, text: string): void {
  const folder = join(dataDir, 'templates', 'email');
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, name), text);
}

describe('email templates', () => {
  it('has a template for every notification kind and the verification mail', () => {
    expect(EMAIL_KINDS).toEqual([...NOTIFICATION_KINDS, VERIFICATION_KIND]);
  });

  it.each(NOTIFICATION_KINDS)('renders %s with the title, the body, the link and the kind, escaped in HTML', async (kind) => {
    const rendered = await templates.render(content({ kind }));
    expect(rendered.subject).toBe('[cloudphone] Budget "team" <spent>');
    expect(rendered.text).toContain('Budget "team" <spent>');
    expect(rendered.text).toContain('First paragraph & more.\n\nSecond one.');
    expect(rendered.text).toContain('http://127.0.0.1:8080/v1/budgets/bdg_1');
    expect(rendered.html).toContain('<h2>Budget &quot;team&quot; &lt;spent&gt;</h2>');
    expect(rendered.html).toContain('<p>First paragraph &amp; more.</p>\n<p>Second one.</p>');
    expect(rendered.html).toContain('<a href="http://127.0.0.1:8080/v1/budgets/bdg_1">');
    expect(rendered.html).not.toContain('<spent>');
  });

  it('leaves the link out of an email without one', async () => {
    const rendered = await templates.render(content({ link: null }));
    expect(rendered.text).not.toContain('Open:');
    expect(rendered.html).not.toContain('<a ');
  });

  it('renders the verification mail with its link', async () => {
    const link = 'http://127.0.0.1:8080/v1/email-verifications?token=abc&x=1';
    const rendered = await templates.render(content({ kind: VERIFICATION_KIND, link }));
    expect(rendered.subject).toBe('Verify your email address for cloudphone');
    expect(rendered.text).toContain(link);
    expect(rendered.text).toContain('24 hours');
    expect(rendered.html).toContain('href="http://127.0.0.1:8080/v1/email-verifications?token=abc&amp;x=1"');
  });

  it('takes each part from the data directory when a file exists, the others built in', async () => {
    override('budget.exhausted.subject.txt', 'Spent: {{ budget.name }}\r\nBcc: evil@example.com\n');
    override('budget.exhausted.html', '<h1>{{title}}</h1><p>{{budget.name}} {{spent}} {{missing}}{{budget}}</p>');
    const rendered = await templates.render(content());
    // One header line whatever the file holds; values are not escaped outside HTML.
    expect(rendered.subject).toBe('Spent: <b>team</b> Bcc: evil@example.com');
    expect(rendered.html).toBe('<h1>Budget &quot;team&quot; &lt;spent&gt;</h1><p>&lt;b&gt;team&lt;/b&gt; 1200 </p>');
    expect(rendered.text).toContain('First paragraph & more.');
  });

  it('reads the files at every render, so an edit applies at once', async () => {
    override('budget.exhausted.txt', 'one {{kind}}');
    expect((await templates.render(content())).text).toBe('one budget.exhausted');
    override('budget.exhausted.txt', 'two {{publicUrl}}');
    expect((await templates.render(content())).text).toBe('two http://127.0.0.1:8080');
  });

  it('refuses a kind it does not know rather than reading a file named after it', async () => {
    override('secret.txt', 'do not read');
    for (const kind of ['../secret', 'secret', '__proto__', 'lease.expiring/../../secret']) {
      await expect(templates.render(content({ kind }))).rejects.toBeInstanceOf(UnknownEmailKindError);
    }
  });

  it('reads no inherited property of the data', async () => {
    override('budget.exhausted.txt', '[{{constructor}}][{{budget.toString}}][{{__proto__}}]');
    expect((await templates.render(content())).text).toBe('[][][]');
  });
});
