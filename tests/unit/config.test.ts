import { ConfigError, parseConfig } from '../../lib/platform/config';

// What serverless.yml gives every function; each test changes what it is about.
const base = {
  STAGE: 'local',
  DB_RESOURCE_ARN: 'arn:aws:rds:us-east-1:000000000000:cluster:local',
  DB_SECRET_ARN: 'arn:aws:secretsmanager:us-east-1:000000000000:secret:local',
  DB_NAME: 'app',
  JWT_ISSUER: 'http://127.0.0.1/local-issuer',
  JWT_AUDIENCE: 'local',
};

describe('localAuth (unsigned local tokens)', () => {
  it('is on for stage local run by hand or by serverless-offline', () => {
    expect(parseConfig(base).localAuth).toBe(true);
    expect(parseConfig({ ...base, AWS_LAMBDA_FUNCTION_NAME: 'svc-local-like', IS_OFFLINE: 'true' }).localAuth).toBe(true);
  });

  it.each(['prod', 'dev', 'test', 'Local', 'local '])('is off on stage %j', (stage) => {
    expect(parseConfig({ ...base, STAGE: stage }).localAuth).toBe(false);
  });

  it.each([
    ['IS_OFFLINE unset', {}],
    ['IS_OFFLINE false', { IS_OFFLINE: 'false' }],
    ['IS_OFFLINE empty', { IS_OFFLINE: '' }],
  ])('is off on stage local inside real Lambda (%s)', (_, offline) => {
    expect(parseConfig({ ...base, AWS_LAMBDA_FUNCTION_NAME: 'svc-local-like', ...offline }).localAuth).toBe(false);
  });
});

it('applies the documented defaults', () => {
  expect(parseConfig(base)).toMatchObject({
    region: 'us-east-1',
    redis: { url: 'redis://127.0.0.1:6379', cluster: false, keyPrefix: '' },
    db: { database: 'app', endpoint: undefined },
    businessTimeZone: 'Asia/Seoul',
  });
});

it('treats an empty variable as unset, as serverless.yml renders an unset param', () => {
  expect(parseConfig({ ...base, DATA_API_ENDPOINT: '', REDIS_CLUSTER: '' }).db.endpoint).toBeUndefined();
  expect(parseConfig({ ...base, DATA_API_ENDPOINT: '', REDIS_CLUSTER: '' }).redis.cluster).toBe(false);
});

// The canonical list is only a shortcut: a zone Intl knows by another name still passes.
it.each(['Asia/Seoul', 'America/Argentina/Buenos_Aires', 'UTC', 'Etc/GMT+5', 'Asia/Calcutta', 'asia/seoul'])('accepts the time zone %s', (zone) => {
  expect(parseConfig({ ...base, BUSINESS_TIMEZONE: zone }).businessTimeZone).toBe(zone);
});

it.each([
  ['a missing required variable', { JWT_ISSUER: undefined }, /JWT_ISSUER/],
  ['a Redis URL of another scheme', { REDIS_URL: 'http://127.0.0.1:6379' }, /REDIS_URL/],
  ['an unknown time zone', { BUSINESS_TIMEZONE: 'Mars/Olympus' }, /BUSINESS_TIMEZONE/],
  ['a flag that is not a boolean', { REDIS_CLUSTER: 'yes' }, /REDIS_CLUSTER/],
  ['a non-numeric timeout', { REDIS_COMMAND_TIMEOUT_MS: 'soon' }, /REDIS_COMMAND_TIMEOUT_MS/],
  ['an endpoint that is not a URL', { DATA_API_ENDPOINT: '127.0.0.1:4010' }, /DATA_API_ENDPOINT/],
  ['an instance tier δ that with the command timeout reaches 2 s', { CACHE_INSTANCE_FRESH_MS: '1000' }, /CACHE_INSTANCE_FRESH_MS/],
  ['a command timeout that with δ reaches 2 s', { REDIS_COMMAND_TIMEOUT_MS: '1200' }, /CACHE_INSTANCE_FRESH_MS \+ REDIS_COMMAND_TIMEOUT_MS/],
])('refuses %s, naming the variable', (_, change, name) => {
  expect(() => parseConfig({ ...base, ...change })).toThrow(ConfigError);
  expect(() => parseConfig({ ...base, ...change })).toThrow(name);
});
