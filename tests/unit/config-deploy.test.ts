import { ConfigError, parseConfig } from '../../lib/platform/config';
import type { HttpEvent } from '../../lib/platform/http';
import { httpEvent } from '../support/events';

/**
 * The settings a deployment must not get wrong (issue 12): the local Data API
 * endpoint and the unsigned-token shortcut exist only off AWS, and the
 * claim that names the caller is a setting.
 */

const base = {
  STAGE: 'prod',
  DB_RESOURCE_ARN: 'arn:aws:rds:ap-northeast-2:123456789012:cluster:app',
  DB_SECRET_ARN: 'arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:app-AbCdEf',
  DB_NAME: 'app',
  JWT_ISSUER: 'https://cognito-idp.ap-northeast-2.amazonaws.com/pool',
  JWT_AUDIENCE: 'client',
};
const local = { ...base, STAGE: 'local', JWT_ISSUER: 'http://127.0.0.1/local-issuer', JWT_AUDIENCE: 'local' };
const inLambda = { AWS_LAMBDA_FUNCTION_NAME: 'likes-points-popular-prod-like' };
const endpoint = { DATA_API_ENDPOINT: 'http://127.0.0.1:4010' };

describe('DATA_API_ENDPOINT', () => {
  it.each([
    ['stage prod', { ...base, ...endpoint }],
    ['stage prod in Lambda', { ...base, ...inLambda, ...endpoint }],
    ['stage dev', { ...base, STAGE: 'dev', ...endpoint }],
    ['stage local in real Lambda', { ...local, ...inLambda, ...endpoint }],
    ['stage test in real Lambda', { ...local, STAGE: 'test', ...inLambda, ...endpoint }],
  ])('is a configuration error on %s', (_, env) => {
    expect(() => parseConfig(env)).toThrow(ConfigError);
    expect(() => parseConfig(env)).toThrow(/DATA_API_ENDPOINT/);
  });

  it.each([
    ['stage local (npm start, serverless-offline)', { ...local, ...endpoint, ...inLambda, IS_OFFLINE: 'true' }],
    ['stage local run by hand', { ...local, ...endpoint }],
    ['the tests', { ...local, STAGE: 'test', ...endpoint }],
    ['the bench', { ...local, STAGE: 'bench', ...endpoint }],
  ])('is honoured on %s', (_, env) => {
    expect(parseConfig(env).db.endpoint).toBe(endpoint.DATA_API_ENDPOINT);
  });

  it('is unset in prod as serverless.yml renders it (an empty param)', () => {
    expect(parseConfig({ ...base, ...inLambda, DATA_API_ENDPOINT: '' }).db.endpoint).toBeUndefined();
  });
});

describe('the local token shortcut', () => {
  it('is on only for stage local, off Lambda, with the local issuer', () => {
    expect(parseConfig(local).localAuth).toBe(true);
    expect(parseConfig({ ...local, ...inLambda }).localAuth).toBe(false);
    expect(parseConfig({ ...local, JWT_ISSUER: base.JWT_ISSUER }).localAuth).toBe(false);
    expect(parseConfig({ ...base, JWT_ISSUER: local.JWT_ISSUER }).localAuth).toBe(false);
  });
});

describe('USER_ID_CLAIM', () => {
  it('defaults to sub and takes any claim name', () => {
    expect(parseConfig(base).jwt.userIdClaim).toBe('sub');
    expect(parseConfig({ ...base, USER_ID_CLAIM: 'custom:user_id' }).jwt.userIdClaim).toBe('custom:user_id');
  });

  it("reads the caller from the named claim of the authorizer's verified claims", () => {
    const callerWith = (env: Record<string, string>, claims: Record<string, unknown>): number => {
      let found: number | undefined;
      jest.isolateModules(() => {
        // Exactly this environment: a run's global setup may have set others (DATA_API_ENDPOINT).
        const saved = process.env;
        process.env = { ...base, ...env };
        try {
          // eslint-disable-next-line @typescript-eslint/no-require-imports
          const { callerId } = require('../../lib/platform/auth') as typeof import('../../lib/platform/auth');
          const event: HttpEvent = httpEvent({ routeKey: 'GET /points', userId: 1 });
          event.requestContext.authorizer = { jwt: { claims } };
          found = callerId(event);
        } finally {
          process.env = saved;
        }
      });
      return found!;
    };
    const cognito = { sub: '8a1f3c52-8d6e-4f0b-9a4c-3f2b1e0d9c87', 'custom:user_id': '42' };
    expect(callerWith({ USER_ID_CLAIM: 'custom:user_id' }, cognito)).toBe(42);
    expect(() => callerWith({}, cognito)).toThrow(/sub is not a user id/);
    expect(callerWith({}, { sub: '7' })).toBe(7);
  });
});

describe('Redis credentials', () => {
  it('refuse a password in REDIS_URL outside the offline stages, naming the setting to use instead', () => {
    const withPassword = { ...base, REDIS_URL: 'rediss://:s3cret@cache.example.com:6379' };
    expect(() => parseConfig(withPassword)).toThrow(ConfigError);
    expect(() => parseConfig(withPassword)).toThrow(/REDIS_URL.*REDIS_AUTH_PARAMETER/);
    expect(parseConfig({ ...local, REDIS_URL: 'redis://:dev@127.0.0.1:6379' }).redis.url).toContain(':dev@');
  });

  it('take the name of the SSM parameter that holds the token', () => {
    expect(parseConfig({ ...base, REDIS_AUTH_PARAMETER: '/likes/prod/redis-auth' }).redis.authParameter).toBe('/likes/prod/redis-auth');
    expect(parseConfig({ ...base, REDIS_AUTH_PARAMETER: '' }).redis.authParameter).toBeUndefined();
  });
});
