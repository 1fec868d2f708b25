/**
 * Onboard a teammate: create a member account, issue them an API token for CI, and show the audit trail.
 *
 *   CLOUDPHONE_API_URL=http://127.0.0.1:8080 CLOUDPHONE_TOKEN=<admin token> npx tsx examples/onboard-user.ts alice
 *
 * Prints one JSON object per step on stdout. The member's password and token secret are printed once, as the
 * server shows them once.
 */
import { CloudPhone, ConflictError } from '@cloudphone/sdk';
import { randomBytes } from 'node:crypto';

const username = process.argv[2];
if (!username) {
  process.stderr.write('usage: onboard-user.ts <username>\n');
  process.exit(2);
}

const admin = new CloudPhone();
const me = await admin.me.get();
if (me.role !== 'admin') {
  process.stderr.write(`${me.username} is a ${me.role}; onboarding needs an admin token\n`);
  process.exit(1);
}

const password = randomBytes(18).toString('base64url');
let user;
try {
  user = await admin.users.create({ username, password, role: 'member', displayName: username });
} catch (error) {
  if (error instanceof ConflictError && error.code === 'username_taken') {
    process.stderr.write(`${username} already exists\n`);
    process.exit(1);
  }
  throw error;
}
console.log(JSON.stringify({ step: 'user', id: user.id, username: user.username, role: user.role, password }));

// The token belongs to the member, so it is created in a short session of theirs, ended right after.
const session = await admin.auth.login({ username, password });
const member = admin.withOptions({ token: session.accessToken });
const token = await member.tokens.create({ name: 'ci', scopes: ['read', 'write'], expiresInDays: 30 });
await member.auth.logout({ refreshToken: session.refreshToken });
console.log(JSON.stringify({ step: 'token', id: token.id, scopes: token.scopes, expiresAt: token.expiresAt, secret: token.secret }));

for (const subjectId of [user.id, token.id]) {
  for await (const event of admin.events.list({ subjectId })) {
    console.log(JSON.stringify({ step: 'event', type: event.type, actor: event.actor.username, occurredAt: event.occurredAt }));
  }
}
