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

describe('on stage local', () => {
  it('takes the caller from the sub of a token from npm run token', async () => {
    expect(callerId(withAuthorization(`Bearer ${await createLocalToken(42)}`))).toBe(42);
    expect(callerId(withAuthorization(`Bearer ${await createLocalToken('9007199254740991')}`))).toBe(9007199254740991);
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
  afterEach(() => {
    process.env.STAGE = 'local';
    delete process.env.AWS_LAMBDA_FUNCTION_NAME;
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
    const authCallerId = await freshCallerId();
    const local = withAuthorization(`Bearer ${await createLocalToken(42)}`);
    // A fresh module set has its own error classes: match the code.
    const unauthorized = expect.objectContaining({ code: 'UNAUTHORIZED' });
    expect(() => authCallerId(local)).toThrow(unauthorized);

    expect(authCallerId(httpEvent({ routeKey: 'GET /points', userId: 42 }))).toBe(42);
    expect(() => authCallerId(httpEvent({ routeKey: 'GET /points', userId: 'alice' }))).toThrow(unauthorized);
  });
});
