import * as z from 'zod/mini';
import { ConfigError, featureSettings, parseConfig, parseSettings, positiveInt } from '../platform/config';

/** Points' settings (balances, the user's lock, Idempotency-Key): each variable once, its name the key. */
export const pointsSchema = z.object({
  /**
   * A holder's lease on the user's lock (lib/points/balance, passed to
   * lib/platform/lock), renewed while it works (every third); short, so a
   * holder that died frees the lock soon
   * (docs/decisions/004-fencing-tokens-and-leases.md).
   */
  POINT_LOCK_LEASE_MS: positiveInt(2000),
  /** How a request waits for the user's lock: 'notify' (queued, handed over), 'spin' (polling), 'fail-fast'. */
  POINT_LOCK_STRATEGY: z._default(z.enum(['notify', 'spin', 'fail-fast']), 'notify'),
  /**
   * The per-user cap on point requests waiting for the lock ('notify'): one
   * more is refused 409 LOCK_TIMEOUT by its acquire call alone; past what the
   * wait budget can serve (docs/decisions/005-lock-wait-budget-and-cap.md). 0: no cap.
   */
  POINT_LOCK_MAX_WAITERS: z._default(z.coerce.number().check(z.int(), z.minimum(0)), 256),
  /**
   * How long a request waits for the user's lock before 409 LOCK_TIMEOUT
   * (docs/decisions/005-lock-wait-budget-and-cap.md).
   */
  POINT_LOCK_WAIT_BUDGET_MS: positiveInt(8000),
  /** Longest life of the "still running" marker of an Idempotency-Key (never beyond the Lambda's). */
  IDEMPOTENCY_MARKER_TTL_MS: positiveInt(15000),
  /** Stored Idempotency-Key replies older than this are purged daily; docs/api.md promises at least one day. */
  IDEMPOTENCY_RETENTION_DAYS: positiveInt(7),
  /**
   * The function's timeout in seconds, set in serverless.yml on the
   * functions that take the point lock (charge, pay): the cold start checks
   * that the lock wait, the statement and its resolution fit inside it.
   */
  FUNCTION_TIMEOUT_S: z.optional(z.coerce.number().check(z.positive())),
});

export type PointsSettings = z.output<typeof pointsSchema>;

export function parsePointsSettings(env: Record<string, string | undefined>): PointsSettings {
  const e = parseSettings(pointsSchema, env);
  if (e.FUNCTION_TIMEOUT_S !== undefined) {
    const { db, deadline } = parseConfig(env);
    // A request that waits the whole lock budget must still have time for its
    // statement and that statement's resolution, and answer before the platform
    // kills it (docs/decisions/005-lock-wait-budget-and-cap.md).
    const needed = e.POINT_LOCK_WAIT_BUDGET_MS + db.callTimeoutMs + db.resolveBudgetMs + deadline.safetyMarginMs + deadline.clockSkewMarginMs;
    if (e.FUNCTION_TIMEOUT_S * 1000 <= needed) {
      throw new ConfigError(
        `invalid environment: FUNCTION_TIMEOUT_S (${e.FUNCTION_TIMEOUT_S} s) must be more than POINT_LOCK_WAIT_BUDGET_MS + DB_CALL_TIMEOUT_MS + DB_RESOLVE_BUDGET_MS + DEADLINE_SAFETY_MARGIN_MS + CLOCK_SKEW_MARGIN_MS (${needed} ms)`,
      );
    }
  }
  return e;
}

/** Validated at cold start with the platform's settings (lib/platform/config). */
export const pointsSettings = featureSettings(pointsSchema, parsePointsSettings);

/** What the user's lock takes from these settings (lib/platform/lock options). */
export function pointLockOptions(): { leaseMs: number; waitBudgetMs: number; strategy: PointsSettings['POINT_LOCK_STRATEGY']; maxWaiters: number } {
  const s = pointsSettings();
  return { leaseMs: s.POINT_LOCK_LEASE_MS, waitBudgetMs: s.POINT_LOCK_WAIT_BUDGET_MS, strategy: s.POINT_LOCK_STRATEGY, maxWaiters: s.POINT_LOCK_MAX_WAITERS };
}
