import { z } from 'zod';

/**
 * The one place that reads process.env. Validated once per cold start; a bad
 * value fails the cold start with an error naming the variable, instead of a
 * confusing failure on the first request that touches it.
 */

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

const timeZone = z.string().refine(
  (zone) => {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: zone });
      return true;
    } catch {
      return false;
    }
  },
  { message: 'is not an IANA time zone' },
);

const flag = z
  .enum(['true', 'false', '1', '0', ''])
  .default('false')
  .transform((value) => value === 'true' || value === '1');

const schema = z.object({
  STAGE: z.string().min(1),
  /** Set by serverless-offline: requests are served on a developer's machine. */
  IS_OFFLINE: flag,
  /** Set by the Lambda runtime (and by serverless-offline, which fakes it). */
  AWS_LAMBDA_FUNCTION_NAME: z.string().optional(),
  AWS_REGION: z.string().min(1).default('us-east-1'),

  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://').default('redis://127.0.0.1:6379'),
  REDIS_CLUSTER: flag,
  /** Namespaces every key; lets tests (and stages sharing a cluster) stay apart. */
  REDIS_KEY_PREFIX: z.string().default(''),
  REDIS_CONNECT_TIMEOUT_MS: positiveInt(1000),
  REDIS_COMMAND_TIMEOUT_MS: positiveInt(1000),

  DB_RESOURCE_ARN: z.string().min(1),
  DB_SECRET_ARN: z.string().min(1),
  DB_NAME: z.string().min(1),
  /** Only for the local stack and tests: the local Data API endpoint. */
  DATA_API_ENDPOINT: z.url().optional(),
  /**
   * Total time spent retrying DatabaseResumingException (Aurora Serverless v2
   * waking from auto-pause takes about 15 s). Kept well inside the functions'
   * timeouts: past it the client gets 503 with Retry-After and retries.
   */
  DB_RESUME_BUDGET_MS: positiveInt(5000),

  JWT_ISSUER: z.string().min(1),
  JWT_AUDIENCE: z.string().min(1),

  BUSINESS_TIMEZONE: timeZone.default('Asia/Seoul'),

  /**
   * Deadlines (lib/platform/deadline): a request answers this long before its
   * function's timeout, so the platform's timeout error is never the answer.
   */
  DEADLINE_SAFETY_MARGIN_MS: positiveInt(1000),
  /**
   * How far Redis' or the database's clock may be behind ours. A server
   * refuses to act for a request this long before the request's deadline;
   * Lambda, ElastiCache and Aurora all keep time with the Amazon Time Sync
   * Service (well under a millisecond apart), so 100 ms is generous.
   */
  CLOCK_SKEW_MARGIN_MS: positiveInt(100),
  /** The deadline of work outside a Lambda request (CLIs, tests calling services directly). */
  DEFAULT_REQUEST_BUDGET_MS: positiveInt(10000),

  /**
   * Points (lib/points/points, lib/platform/lock): a holder's lease on the user's lock,
   * renewed while it works; short, so a holder that died frees the lock soon.
   */
  POINT_LOCK_LEASE_MS: positiveInt(5000),
  /**
   * How long a request waits for the user's lock before 409 LOCK_TIMEOUT.
   * Room for a burst of ~200 requests of one user served one at a time at
   * 20-40 ms each (one Data API call), leaving the statement 7 s of the
   * function's 15 s timeout, and well under API Gateway's 30 s.
   */
  POINT_LOCK_WAIT_BUDGET_MS: positiveInt(8000),
  /** Longest life of the "still running" marker of an Idempotency-Key (never beyond the Lambda's). */
  IDEMPOTENCY_MARKER_TTL_MS: positiveInt(15000),
  /** Stored Idempotency-Key replies older than this are purged daily; API.md promises at least one day. */
  IDEMPOTENCY_RETENTION_DAYS: positiveInt(7),

  /** Cache-aside (lib/platform/cache): how long one filler may hold a value's lock. */
  CACHE_LOCK_TTL_MS: positiveInt(5000),
  /** How long the other callers wait for that fill before asking the database themselves. */
  CACHE_WAIT_BUDGET_MS: positiveInt(1500),
  /** How often a waiting caller looks for the filled value. */
  CACHE_POLL_INTERVAL_MS: positiveInt(25),
  /** Up to this much is added to each TTL at random, so values do not all expire at once. */
  CACHE_TTL_JITTER_MS: positiveInt(60000),
});

export type Env = z.input<typeof schema>;

export interface Config {
  stage: string;
  region: string;
  /**
   * True only for stage `local` outside real Lambda: the functions then check
   * the token's claims themselves (no signature), because no API Gateway
   * authorizer stands in front of them.
   */
  localAuth: boolean;
  redis: {
    url: string;
    cluster: boolean;
    keyPrefix: string;
    connectTimeoutMs: number;
    commandTimeoutMs: number;
  };
  db: {
    resourceArn: string;
    secretArn: string;
    database: string;
    endpoint: string | undefined;
    resumeBudgetMs: number;
  };
  jwt: { issuer: string; audience: string };
  businessTimeZone: string;
  deadline: { safetyMarginMs: number; clockSkewMarginMs: number; defaultBudgetMs: number };
  pointLock: { leaseMs: number; waitBudgetMs: number };
  idempotency: { markerTtlMs: number; retentionDays: number };
  cache: {
    lockTtlMs: number;
    waitBudgetMs: number;
    pollIntervalMs: number;
    ttlJitterMs: number;
  };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function parseConfig(env: Record<string, string | undefined>): Config {
  // serverless.yml renders an unset optional param as '', which means "not set".
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`invalid environment: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  // Real Lambda sets AWS_LAMBDA_FUNCTION_NAME; serverless-offline sets it too,
  // but also IS_OFFLINE. Unsigned local tokens must never be accepted by a
  // function running in AWS, whatever the stage is called there.
  const inRealLambda = e.AWS_LAMBDA_FUNCTION_NAME !== undefined && !e.IS_OFFLINE;
  return {
    stage: e.STAGE,
    region: e.AWS_REGION,
    localAuth: e.STAGE === 'local' && !inRealLambda,
    redis: {
      url: e.REDIS_URL,
      cluster: e.REDIS_CLUSTER,
      keyPrefix: e.REDIS_KEY_PREFIX,
      connectTimeoutMs: e.REDIS_CONNECT_TIMEOUT_MS,
      commandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
    },
    db: {
      resourceArn: e.DB_RESOURCE_ARN,
      secretArn: e.DB_SECRET_ARN,
      database: e.DB_NAME,
      endpoint: e.DATA_API_ENDPOINT,
      resumeBudgetMs: e.DB_RESUME_BUDGET_MS,
    },
    jwt: { issuer: e.JWT_ISSUER, audience: e.JWT_AUDIENCE },
    businessTimeZone: e.BUSINESS_TIMEZONE,
    deadline: {
      safetyMarginMs: e.DEADLINE_SAFETY_MARGIN_MS,
      clockSkewMarginMs: e.CLOCK_SKEW_MARGIN_MS,
      defaultBudgetMs: e.DEFAULT_REQUEST_BUDGET_MS,
    },
    pointLock: { leaseMs: e.POINT_LOCK_LEASE_MS, waitBudgetMs: e.POINT_LOCK_WAIT_BUDGET_MS },
    idempotency: { markerTtlMs: e.IDEMPOTENCY_MARKER_TTL_MS, retentionDays: e.IDEMPOTENCY_RETENTION_DAYS },
    cache: {
      lockTtlMs: e.CACHE_LOCK_TTL_MS,
      waitBudgetMs: e.CACHE_WAIT_BUDGET_MS,
      pollIntervalMs: e.CACHE_POLL_INTERVAL_MS,
      ttlJitterMs: e.CACHE_TTL_JITTER_MS,
    },
  };
}

let loaded: Config | undefined;

/** The validated configuration, read from process.env on first use. */
export function config(): Config {
  loaded ??= parseConfig(process.env);
  return loaded;
}
