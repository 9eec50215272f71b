import { callerId } from '../../lib/platform/auth';
import { UnauthorizedError } from '../../lib/platform/errors';
import { httpHandler, json } from '../../lib/platform/http';
import { createLocalToken } from '../../lib/platform/local-token';
import { bodyOf, httpEvent, lambdaContext } from '../support/events';

// This file is a function on stage local outside Lambda (npm start); config()
// reads the environment on first use, after this line.
process.env.STAGE = 'local';

/** A local request: no authorizer ran, the token travels as it came. */
const withAuthorization = (authorization?: string) =>
  httpEvent({ routeKey: 'GET /points', headers: authorization === undefined ? {} : { authorization } });

/** A token with exactly these claims (the signature is never checked locally). */
function token(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}.c2lnbmF0dXJl`;
}
const valid = () => ({ sub: '7', iss: 'http://127.0.0.1/local-issuer', aud: 'local', exp: Math.floor(Date.now() / 1000) + 60 });

/** Tokens with valid claims but a segment that is not what docs/api.md asks for: each is a 401. */
function malformed(): { what: string; token: string }[] {
  const b64 = (text: string) => Buffer.from(text).toString('base64url');
  const header = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64(JSON.stringify(valid()));
  return [
    { what: 'a header that is not JSON', token: `${b64('not json')}.${payload}.c2ln` },
    { what: 'a header that is a JSON array', token: `${b64('[1,2]')}.${payload}.c2ln` },
    { what: 'a header that is a JSON string', token: `${b64('"HS256"')}.${payload}.c2ln` },
    { what: 'a header that is JSON null', token: `${b64('null')}.${payload}.c2ln` },
    { what: 'an empty header', token: `.${payload}.c2ln` },
    { what: 'a payload that is a JSON array', token: `${header}.${b64(JSON.stringify([valid()]))}.c2ln` },
    { what: 'a payload that is JSON null', token: `${header}.${b64('null')}.c2ln` },
    { what: 'a header in base64 (not base64url) with padding', token: `${Buffer.from('{"alg":"HS256"}?').toString('base64')}.${payload}.c2ln` },
    { what: 'a payload with characters outside base64url', token: `${header}.${payload}*.c2ln` },
    { what: 'a signature with characters outside base64url', token: `${header}.${payload}.c2ln+/=` },
    { what: 'a segment of impossible length (4n+1)', token: `${header}.${payload}.c2lu5` },
    { what: 'four segments', token: `${header}.${payload}.c2ln.c2ln` },
    { what: 'two segments', token: `${header}.${payload}` },
  ];
}

describe('on stage local', () => {
  it('takes the caller from the sub of a token from npm run token', async () => {
    expect(callerId(withAuthorization(`Bearer ${await createLocalToken(42)}`))).toBe(42);
    expect(callerId(withAuthorization(`Bearer ${await createLocalToken('9007199254740991')}`))).toBe(9007199254740991);
  });

  it('accepts an unsigned token (empty signature), since signatures are never checked locally', () => {
    expect(callerId(withAuthorization(`Bearer ${token(valid()).replace(/[^.]+$/, '')}`))).toBe(7);
  });

  it('answers a token whose header segment is not a JSON object with 401 problem+json', async () => {
    const handler = httpHandler(async (event) => json(200, { userId: callerId(event) }));
    for (const { token: bad } of malformed()) {
      const result = await handler(withAuthorization(`Bearer ${bad}`), lambdaContext());
      expect({ token: bad, status: result.statusCode, code: bodyOf(result).code }).toEqual({ token: bad, status: 401, code: 'UNAUTHORIZED' });
    }
  });

  it('accepts any case of the scheme and an audience list that includes local', () => {
    expect(callerId(withAuthorization(`bearer ${token(valid())}`))).toBe(7);
    expect(callerId(withAuthorization(`Bearer ${token({ ...valid(), aud: ['other', 'local'] })}`))).toBe(7);
    expect(callerId(withAuthorization(`Bearer ${token({ ...valid(), nbf: Math.floor(Date.now() / 1000) - 5 })}`))).toBe(7);
  });

  it.each<[string, string | undefined]>([
    ['no Authorization header', undefined],
    ['an empty header', ''],
    ['a bearer without a token', 'Bearer '],
    ['another scheme', `Basic ${token(valid())}`],
    ['two tokens', `Bearer ${token(valid())} ${token(valid())}`],
    ['a token that is not a JWT', 'Bearer not-a-jwt'],
    ['a JWT whose payload is not JSON', 'Bearer eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln'],
    ...malformed().map((bad): [string, string] => [bad.what, `Bearer ${bad.token}`]),
    ['another issuer', `Bearer ${token({ ...valid(), iss: 'https://issuer.example.com' })}`],
    ['no issuer', `Bearer ${token({ ...valid(), iss: undefined })}`],
    ['another audience', `Bearer ${token({ ...valid(), aud: 'someone-else' })}`],
    ['no audience', `Bearer ${token({ ...valid(), aud: undefined })}`],
    ['an expired token', `Bearer ${token({ ...valid(), exp: Math.floor(Date.now() / 1000) - 1 })}`],
    ['no exp', `Bearer ${token({ ...valid(), exp: undefined })}`],
    ['an exp that is not a number', `Bearer ${token({ ...valid(), exp: '9999999999' })}`],
    ['a token not valid yet (nbf in the future)', `Bearer ${token({ ...valid(), nbf: Math.floor(Date.now() / 1000) + 60 })}`],
    ['no sub', `Bearer ${token({ ...valid(), sub: undefined })}`],
    ['a numeric (not string) sub', `Bearer ${token({ ...valid(), sub: 7 })}`],
    ...['alice', '0', '01', '-1', '1e3', '9007199254740992', ' 7'].map((sub): [string, string] => [`sub ${JSON.stringify(sub)}`, `Bearer ${token({ ...valid(), sub })}`]),
  ])('refuses %s', (_, authorization) => {
    expect(() => callerId(withAuthorization(authorization))).toThrow(UnauthorizedError);
  });

  it('answers a refused token with 401 problem+json through httpHandler', async () => {
    const handler = httpHandler(async (event) => json(200, { userId: callerId(event) }));
    const result = await handler(withAuthorization('Bearer not-a-jwt'), lambdaContext());
    expect(result.statusCode).toBe(401);
    expect(result.headers?.['content-type']).toBe('application/problem+json');
    expect(bodyOf(result)).toMatchObject({ type: 'about:blank', status: 401, code: 'UNAUTHORIZED', title: 'Unauthorized' });
  });
});

describe('outside stage local', () => {
  const dataApiEndpoint = process.env.DATA_API_ENDPOINT;
  afterEach(() => {
    process.env.STAGE = 'local';
    delete process.env.AWS_LAMBDA_FUNCTION_NAME;
    if (dataApiEndpoint !== undefined) process.env.DATA_API_ENDPOINT = dataApiEndpoint;
  });

  /** lib/platform/auth with a fresh config(), read from the environment as it is now. */
  async function freshCallerId(): Promise<typeof callerId> {
    let loaded: typeof callerId | undefined;
    await jest.isolateModulesAsync(async () => {
      loaded = (await import('../../lib/platform/auth')).callerId;
    });
    return loaded!;
  }

  it.each([
    ['stage prod', { STAGE: 'prod' }],
    ['stage local in real Lambda', { STAGE: 'local', AWS_LAMBDA_FUNCTION_NAME: 'svc-local-like' }],
  ])('ignores a local token on %s and reads the claims the authorizer verified', async (_, env) => {
    Object.assign(process.env, env);
    // Set by the integration tests' global setup when both projects run; a
    // deployed stage refuses it (lib/platform/config), and none would have it.
    delete process.env.DATA_API_ENDPOINT;
    const authCallerId = await freshCallerId();
    const local = withAuthorization(`Bearer ${await createLocalToken(42)}`);
    // A fresh module set has its own error classes: match the code.
    const unauthorized = expect.objectContaining({ code: 'UNAUTHORIZED' });
    expect(() => authCallerId(local)).toThrow(unauthorized);

    expect(authCallerId(httpEvent({ routeKey: 'GET /points', userId: 42 }))).toBe(42);
    expect(() => authCallerId(httpEvent({ routeKey: 'GET /points', userId: 'alice' }))).toThrow(unauthorized);
  });
});
