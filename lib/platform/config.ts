import * as z from 'zod/mini';
import './zod-messages';
import { LOCAL_ISSUER } from './local-token';

/**
 * The one place that reads process.env: the platform's settings here, and the
 * one loader of every feature's own (featureSettings: each feature declares
 * its schema in its folder, e.g. lib/likes/settings.ts). Validated once per
 * cold start; a bad value fails the cold start with an error naming the
 * variable, instead of a confusing failure on the first request that touches it.
 * Longer than most modules: each platform variable is documented where the
 * schema declares it.
 */

// One schema under every default: building zod schemas is a good part of the config's cold start cost.
const positiveInteger = z.coerce.number().check(z.int(), z.positive());
export const positiveInt = (fallback: number) => z._default(positiveInteger, fallback);

/**
 * Intl's list of canonical zones first, which is far cheaper at cold start
 * than a DateTimeFormat (docs/decisions/008-time-zone-check-at-cold-start.md);
 * a name not on it (UTC, Etc/GMT+5, some aliases) still gets the real test.
 */
let canonicalZones: Set<string> | undefined;
function isTimeZone(zone: string): boolean {
  canonicalZones ??= new Set(Intl.supportedValuesOf('timeZone'));
  if (canonicalZones.has(zone)) return true;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const timeZone = z.string().check(z.refine(isTimeZone, { message: 'is not an IANA time zone' }));

const flagText = z._default(z.enum(['true', 'false', '1', '0', '']), 'false');
const flag = z.pipe(
  flagText,
  z.transform((value: z.output<typeof flagText>) => value === 'true' || value === '1'),
);
export const text = z.string().check(z.minLength(1));

export const platformSchema = z.object({
  STAGE: text,
  /** Set by serverless-offline: requests are served on a developer's machine. */
  IS_OFFLINE: flag,
  /** Set by the Lambda runtime (and by serverless-offline, which fakes it). */
  AWS_LAMBDA_FUNCTION_NAME: z.optional(z.string()),
  AWS_REGION: z._default(text, 'us-east-1'),

  REDIS_URL: z._default(z.string().check(z.regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')), 'redis://127.0.0.1:6379'),
  REDIS_CLUSTER: flag,
  /** Namespaces every key; lets tests (and stages sharing a cluster) stay apart. */
  REDIS_KEY_PREFIX: z._default(z.string(), ''),
  /**
   * The name of an SSM SecureString holding the Redis AUTH token, read at
   * cold start (lib/platform/secrets). The token itself never goes in the
   * environment: a password in REDIS_URL is refused outside the offline
   * stages (docs/decisions/009-local-shortcuts-off-aws.md).
   */
  REDIS_AUTH_PARAMETER: z.optional(text),
  REDIS_CONNECT_TIMEOUT_MS: positiveInt(1000),
  REDIS_COMMAND_TIMEOUT_MS: positiveInt(1000),
  /**
   * How long an idempotent script whose outcome is unknown (a like in flight
   * when its primary died) is retried before its 503 (lib/platform/redis/guard
   * resolveUnknown). Default: 2000 on a cluster, about a failover; 500
   * standalone (docs/decisions/006-lost-reply-resolution.md).
   */
  REDIS_RESOLVE_BUDGET_MS: z.optional(z.coerce.number().check(z.int(), z.positive())),

  DB_RESOURCE_ARN: text,
  DB_SECRET_ARN: text,
  DB_NAME: text,
  /** Only for the local stack and tests: the local Data API endpoint (docs/decisions/009-local-shortcuts-off-aws.md). */
  DATA_API_ENDPOINT: z.optional(z.url()),
  /**
   * Total time spent retrying DatabaseResumingException (Aurora Serverless v2
   * waking from auto-pause takes about 15 s). Kept well inside the functions'
   * timeouts: past it the client gets 503 with Retry-After and retries.
   */
  DB_RESUME_BUDGET_MS: positiveInt(5000),
  /**
   * The longest any one Data API call may take before the client gives up
   * on it (503). Also how long a balance statement may wait for a row lock:
   * docs/api.md wants a 503 within about 2 s when the database does not answer.
   */
  DB_CALL_TIMEOUT_MS: positiveInt(1200),
  /**
   * Kept back from a balance statement's time for finding out, when its
   * call failed after it was sent, whether it committed (lib/points/resolve).
   */
  DB_RESOLVE_BUDGET_MS: positiveInt(800),

  JWT_ISSUER: text,
  JWT_AUDIENCE: text,
  /**
   * The verified claim that carries the caller's user id (docs/api.md "Authentication").
   * Cognito's `sub` is a UUID: name a custom claim such as
   * `custom:user_id` instead.
   */
  USER_ID_CLAIM: z._default(text, 'sub'),

  /** CloudWatch namespace of the EMF metrics (lib/platform/metrics). */
  METRICS_NAMESPACE: z._default(text, 'LikesPointsPopular'),
  /** X-Ray tracing through Powertools Tracer (lib/platform/tracing); the stage's `tracing` param sets it. */
  TRACING_ENABLED: flag,

  BUSINESS_TIMEZONE: z._default(timeZone, 'Asia/Seoul'),

  /**
   * Deadlines (lib/platform/deadline): a request answers this long before its
   * function's timeout, so the platform's timeout error is never the answer.
   */
  DEADLINE_SAFETY_MARGIN_MS: positiveInt(1000),
  /**
   * How far Redis' or the database's clock may be behind ours: a server
   * refuses to act for a request this long before the request's deadline
   * (docs/decisions/001-deadline-scripts.md).
   */
  CLOCK_SKEW_MARGIN_MS: positiveInt(100),
  /** The deadline of work outside a Lambda request (CLIs, tests calling services directly). */
  DEFAULT_REQUEST_BUDGET_MS: positiveInt(10000),

  /**
   * Cache-aside (lib/platform/cache). Platform settings: one mechanism and one
   * instance tier serve every feature, and no feature chooses its own.
   * How long one filler may hold a value's lock.
   */
  CACHE_LOCK_TTL_MS: positiveInt(5000),
  /** How long the other callers wait for that fill before asking the database themselves. */
  CACHE_WAIT_BUDGET_MS: positiveInt(1500),
  /** How often a waiting caller looks for the filled value. */
  CACHE_POLL_INTERVAL_MS: positiveInt(25),
  /** Up to this much is added to each TTL at random, so values do not all expire at once. */
  CACHE_TTL_JITTER_MS: positiveInt(60000),
  /**
   * The instance tier (lib/platform/cache/instance-tier): how long an entry is
   * answered from memory after it last checked its group's generation in
   * Redis (δ). An eviction is seen everywhere within δ; with the command
   * timeout it must stay under docs/api.md's 2 s.
   */
  CACHE_INSTANCE_FRESH_MS: positiveInt(900),
  /** Bounds of each instance tier's memory: entries, and bytes (UTF-16, as V8 may hold them). */
  CACHE_INSTANCE_MAX_ENTRIES: positiveInt(2000),
  CACHE_INSTANCE_MAX_BYTES: positiveInt(16 * 1024 * 1024),

  /** Only for the local stack and tests: the local Kinesis emulator (plain HTTP; lib/platform/stream). */
  KINESIS_ENDPOINT: z.optional(z.url()),
});

export type Env = z.input<typeof platformSchema>;

/** The platform's settings, grouped: the type is what parseConfig builds from the schema. */
export type Config = ReturnType<typeof parseConfig>;

/** Stages that only ever run on a developer's machine or in CI: `local` (npm start), and the test and bench processes. */
const OFFLINE_STAGES = new Set(['local', 'test', 'bench']);

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Validates settings against a schema whose keys are the variables' names; an error names each variable at fault. */
export function parseSettings<Schema extends z.ZodMiniObject>(schema: Schema, env: Record<string, string | undefined>): z.output<Schema> {
  // serverless.yml renders an unset optional param as '', which means "not set".
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const parsed = z.safeParse(schema, present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`invalid environment: ${problems.join('; ')}`);
  }
  return parsed.data;
}

export function parseConfig(env: Record<string, string | undefined>) {
  const e = parseSettings(platformSchema, env);
  // Real Lambda sets AWS_LAMBDA_FUNCTION_NAME; serverless-offline sets it too,
  // but also IS_OFFLINE (docs/decisions/009-local-shortcuts-off-aws.md).
  const inRealLambda = e.AWS_LAMBDA_FUNCTION_NAME !== undefined && !e.IS_OFFLINE;
  // docs/api.md: an eviction is seen by every instance within 2 s of the job's end.
  if (e.CACHE_INSTANCE_FRESH_MS + e.REDIS_COMMAND_TIMEOUT_MS >= 2000) {
    throw new ConfigError(
      `invalid environment: CACHE_INSTANCE_FRESH_MS + REDIS_COMMAND_TIMEOUT_MS (${e.CACHE_INSTANCE_FRESH_MS + e.REDIS_COMMAND_TIMEOUT_MS} ms) must be under 2000 ms, the bound docs/api.md sets for an eviction to reach every instance`,
    );
  }
  // One stray param must fail the cold start, not redirect a deployed stage's
  // database traffic (docs/decisions/009-local-shortcuts-off-aws.md).
  if (e.DATA_API_ENDPOINT !== undefined && (inRealLambda || !OFFLINE_STAGES.has(e.STAGE))) {
    throw new ConfigError(
      `invalid environment: DATA_API_ENDPOINT: is only allowed on stage local (or ${[...OFFLINE_STAGES].filter((s) => s !== 'local').join(', ')} outside Lambda), not on stage ${e.STAGE}${inRealLambda ? ' in AWS Lambda' : ''}`,
    );
  }
  // The same for the stream: a stray endpoint would receive every record.
  if (e.KINESIS_ENDPOINT !== undefined && (inRealLambda || !OFFLINE_STAGES.has(e.STAGE))) {
    throw new ConfigError(`invalid environment: KINESIS_ENDPOINT: is only allowed on the offline stages outside Lambda, not on stage ${e.STAGE}${inRealLambda ? ' in AWS Lambda' : ''}`);
  }
  // A password in the URL would sit in plain text in the function's
  // configuration (docs/decisions/009-local-shortcuts-off-aws.md).
  if (!OFFLINE_STAGES.has(e.STAGE) && new URL(e.REDIS_URL).password !== '') {
    throw new ConfigError('invalid environment: REDIS_URL: must not carry a password outside the offline stages; name an SSM SecureString in REDIS_AUTH_PARAMETER');
  }
  return {
    stage: e.STAGE,
    region: e.AWS_REGION,
    /** Served by serverless-offline (npm start, the e2e tests). */
    offline: e.IS_OFFLINE,
    /**
     * True only for stage `local` outside real Lambda, and only with the local
     * issuer: the functions then check the token's claims themselves (no
     * signature), because no API Gateway authorizer stands in front of them
     * (docs/decisions/009-local-shortcuts-off-aws.md).
     */
    localAuth: e.STAGE === 'local' && !inRealLambda && e.JWT_ISSUER === LOCAL_ISSUER,
    redis: {
      url: e.REDIS_URL,
      cluster: e.REDIS_CLUSTER,
      keyPrefix: e.REDIS_KEY_PREFIX,
      authParameter: e.REDIS_AUTH_PARAMETER,
      connectTimeoutMs: e.REDIS_CONNECT_TIMEOUT_MS,
      commandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
      resolveBudgetMs: e.REDIS_RESOLVE_BUDGET_MS ?? (e.REDIS_CLUSTER ? 2000 : 500),
    },
    db: {
      resourceArn: e.DB_RESOURCE_ARN,
      secretArn: e.DB_SECRET_ARN,
      database: e.DB_NAME,
      endpoint: e.DATA_API_ENDPOINT,
      resumeBudgetMs: e.DB_RESUME_BUDGET_MS,
      callTimeoutMs: e.DB_CALL_TIMEOUT_MS,
      resolveBudgetMs: e.DB_RESOLVE_BUDGET_MS,
    },
    jwt: { issuer: e.JWT_ISSUER, audience: e.JWT_AUDIENCE, userIdClaim: e.USER_ID_CLAIM },
    metrics: { namespace: e.METRICS_NAMESPACE },
    tracing: e.TRACING_ENABLED,
    businessTimeZone: e.BUSINESS_TIMEZONE,
    deadline: {
      safetyMarginMs: e.DEADLINE_SAFETY_MARGIN_MS,
      clockSkewMarginMs: e.CLOCK_SKEW_MARGIN_MS,
      defaultBudgetMs: e.DEFAULT_REQUEST_BUDGET_MS,
    },
    cache: {
      lockTtlMs: e.CACHE_LOCK_TTL_MS,
      waitBudgetMs: e.CACHE_WAIT_BUDGET_MS,
      pollIntervalMs: e.CACHE_POLL_INTERVAL_MS,
      ttlJitterMs: e.CACHE_TTL_JITTER_MS,
      instance: { freshMs: e.CACHE_INSTANCE_FRESH_MS, maxEntries: e.CACHE_INSTANCE_MAX_ENTRIES, maxBytes: e.CACHE_INSTANCE_MAX_BYTES },
    },
    kinesis: { endpoint: e.KINESIS_ENDPOINT },
  };
}

let loaded: Config | undefined;
/** Features' settings declared and not yet validated, and every feature schema declared. */
const unchecked: (() => unknown)[] = [];
const featureSchemas: z.ZodMiniObject[] = [];

/**
 * The validated platform configuration, read from process.env on first use;
 * each call also validates the feature settings declared since the last, so
 * the cold start's call (httpHandler, the other handlers' first line) checks
 * every feature its function imports.
 */
export function config(): Config {
  loaded ??= parseConfig(process.env);
  while (unchecked.length > 0) unchecked.pop()!();
  return loaded;
}

/**
 * A feature's settings, declared once as a schema whose keys are the
 * variables' names (the type is the schema's output): read from process.env
 * on first use, or by the next config() call, whichever comes first.
 * `parse` adds checks against the platform's settings.
 */
export function featureSettings<Schema extends z.ZodMiniObject>(
  schema: Schema,
  parse: (env: Record<string, string | undefined>) => z.output<Schema> = (env) => parseSettings(schema, env),
): () => z.output<Schema> {
  let settings: z.output<Schema> | undefined;
  const load = () => (settings ??= parse(process.env));
  unchecked.push(load);
  featureSchemas.push(schema);
  return load;
}

/** Every schema declared so far, the platform's first (tests: the README lists every variable). */
export function declaredSchemas(): readonly z.ZodMiniObject[] {
  return [platformSchema, ...featureSchemas];
}
