/**
 * A committed credential change after which the live sessions (WebSockets) opened with that credential must end:
 * an API token revoked, a login session ended, or a user whose credentials all (or all login sessions but one) ended.
 */
export type Revocation =
  | { type: 'api_token'; tokenId: string; reason: string }
  | { type: 'session'; sessionId: string; reason: string }
  | {
      type: 'user';
      userId: string;
      reason: string;
      /** Only the user's login sessions (a new password leaves API tokens working). */
      sessionsOnly?: boolean;
      /** A login session that stays (the one that changed its own password). */
      keepSessionId?: string | undefined;
    };

/** Told of each revocation once the transaction that made it has committed. */
export interface RevocationListener {
  revoked(revocation: Revocation): void;
}

/** For services used without live sessions (tests, tools). */
export const noRevocationListener: RevocationListener = { revoked: () => undefined };

/** The credential a live session was opened with, as revocations name it. */
export interface SessionCredential {
  userId: string;
  tokenId: string | undefined;
  sessionId: string | undefined;
}

/** Whether `revocation` ends the credential a live session was opened with. */
export function revokes(revocation: Revocation, credential: SessionCredential): boolean {
  switch (revocation.type) {
    case 'api_token':
      return credential.tokenId === revocation.tokenId;
    case 'session':
      return credential.sessionId === revocation.sessionId;
    case 'user':
      if (credential.userId !== revocation.userId) return false;
      if (revocation.sessionsOnly === true && credential.sessionId === undefined) return false;
      return revocation.keepSessionId === undefined || credential.sessionId !== revocation.keepSessionId;
  }
}
