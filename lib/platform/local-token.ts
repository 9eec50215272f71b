import { SignJWT } from 'jose';

/**
 * Tokens for stage `local`, where functions check claims but not signatures
 * (lib/platform/auth). Signed with a throwaway key only so the token has the usual
 * three parts; nothing verifies it.
 */
export const LOCAL_ISSUER = 'http://127.0.0.1/local-issuer';
export const LOCAL_AUDIENCE = 'local';

export interface LocalTokenOptions {
  expiresInSeconds?: number;
  issuer?: string;
  audience?: string;
  /** Overrides the subject as given, e.g. to test a non-numeric `sub`. */
  sub?: string;
}

const throwawayKey = new TextEncoder().encode('local-stage-only-signature-is-not-checked');

export async function createLocalToken(userId: number | string, options: LocalTokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(options.sub ?? String(userId))
    .setIssuer(options.issuer ?? LOCAL_ISSUER)
    .setAudience(options.audience ?? LOCAL_AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + (options.expiresInSeconds ?? 24 * 3600))
    .sign(throwawayKey);
}
