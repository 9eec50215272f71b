import { decodeJwt, type JWTPayload } from 'jose';
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
  let claims: JWTPayload;
  try {
    claims = decodeJwt(match[1]);
  } catch {
    throw new UnauthorizedError('malformed token');
  }
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
