import { decodeJwt, decodeProtectedHeader, type JWTPayload } from 'jose';
import { config } from './config';
import { UnauthorizedError } from './errors';
import { header, idString, type HttpEvent } from './http';

/**
 * Who is calling: always the JWT's `sub`, never the body or the path.
 *
 * In AWS the HTTP API JWT authorizer has verified signature, issuer, audience
 * and expiry before the function runs; we read its claims and still check the
 * ones we use. On stage `local` (never in real Lambda, see lib/platform/config) there is
 * no authorizer, so the function checks the claims itself, unsigned.
 */
export function callerId(event: HttpEvent): number {
  const claims = config().localAuth ? localClaims(event) : event.requestContext.authorizer?.jwt?.claims;
  if (!claims) throw new UnauthorizedError('no verified token claims');
  // USER_ID_CLAIM (default `sub`): identity providers whose `sub` is not an id name another claim.
  const claim = config().jwt.userIdClaim;
  const sub = idString.safeParse(claims[claim]);
  if (!sub.success) throw new UnauthorizedError(`token claim ${claim} is not a user id`);
  return sub.data;
}

function localClaims(event: HttpEvent): JWTPayload {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header(event, 'authorization') ?? '');
  if (!match?.[1]) throw new UnauthorizedError('missing bearer token');
  const claims = decodeLocalToken(match[1]);
  const { issuer, audience } = config().jwt;
  if (claims.iss !== issuer) throw new UnauthorizedError('wrong token issuer');
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.includes(audience)) throw new UnauthorizedError('wrong token audience');
  if (typeof claims.exp !== 'number' || claims.exp * 1000 <= Date.now()) {
    throw new UnauthorizedError('token is expired or has no expiry');
  }
  // As API Gateway's authorizer does: a token is not valid before its nbf.
  if (claims.nbf !== undefined && (typeof claims.nbf !== 'number' || claims.nbf * 1000 > Date.now())) {
    throw new UnauthorizedError('token is not valid yet');
  }
  return claims;
}

/** Three base64url segments, the signature possibly empty (it is never checked here). */
const COMPACT_JWS = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]*)$/;

/**
 * The payload of a compact JWS whose three segments are base64url and whose
 * protected header and payload are JSON objects (docs/api.md, "Authentication");
 * anything else is a 401. decodeJwt checks the payload only, so the header
 * is decoded and checked too.
 */
function decodeLocalToken(token: string): JWTPayload {
  const segments = COMPACT_JWS.exec(token);
  // A base64 text of length 4n+1 encodes no whole byte sequence.
  if (!segments || segments.slice(1).some((segment) => segment.length % 4 === 1)) throw new UnauthorizedError('malformed token');
  try {
    const protectedHeader = decodeProtectedHeader(token);
    if (typeof protectedHeader !== 'object' || protectedHeader === null || Array.isArray(protectedHeader)) throw new Error('header');
    return decodeJwt(token);
  } catch {
    throw new UnauthorizedError('malformed token');
  }
}
