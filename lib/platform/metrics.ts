import { AsyncLocalStorage } from 'node:async_hooks';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { config } from './config';
import { logger, SERVICE_NAME } from './logger';

/**
 * Business and health metrics as CloudWatch Embedded Metric Format: one JSON
 * line on stdout per invocation, which CloudWatch Logs turns into metrics in
 * AWS (no API call, no extra latency) and which the local stack prints as it
 * is, so a test can read what a request emitted.
 *
 * Call metric() anywhere; values recorded during an invocation (see
 * lib/platform/observability) are published when it ends. Outside an
 * invocation (CLIs, tests calling services directly) they are dropped: there
 * is nobody to flush them and nothing to attribute them to.
 *
 * One dimension only, `service`: a metric per route or function would
 * multiply the alarm and dashboard work, and the function is in the log line.
 */

/** Every metric this service emits, with its unit: the names alarms and dashboards rely on. */
export const METRICS = {
  /** A like that was added (`changed: true`). */
  LikeAdded: MetricUnit.Count,
  /** An unlike that removed a like. */
  LikeRemoved: MetricUnit.Count,
  /** A successful charge, and the points it added. */
  PointsCharged: MetricUnit.Count,
  ChargedAmount: MetricUnit.Count,
  /** A paid order, and its total. */
  OrderPaid: MetricUnit.Count,
  OrderAmount: MetricUnit.Count,
  /** Time from the first attempt to holding the user's point lock. */
  LockWaitMs: MetricUnit.Milliseconds,
  /** 409 LOCK_TIMEOUT answers (the lock's wait budget ran out, or the per-user cap refused). */
  LockTimeout: MetricUnit.Count,
  /** A write refused because a newer lock holder had written (the lease expired under a stall). */
  StaleFence: MetricUnit.Count,
  CacheHit: MetricUnit.Count,
  CacheMiss: MetricUnit.Count,
  /** Answered from the instance tier's memory inside δ (no network), and revalidated past δ by one GET. */
  CacheInstanceHit: MetricUnit.Count,
  CacheInstanceRevalidated: MetricUnit.Count,
  /** A paid order whose trending count failed after the commit (the next trending read's check repairs it). */
  TrendingCountFailed: MetricUnit.Count,
  /** Minutes of trending counts rebuilt or repaired from the orders. */
  TrendingMinutesRepaired: MetricUnit.Count,
  /** A keyed request answered with its stored reply. */
  IdempotentReplay: MetricUnit.Count,
  /** 503 DEPENDENCY_UNAVAILABLE answers, whichever dependency failed. */
  DependencyFailure: MetricUnit.Count,
  /** Age of the oldest like or unlike a sync-likes run wrote to PostgreSQL. */
  LikeSyncLagMs: MetricUnit.Milliseconds,
  /** Likes and unlikes a sync-likes run wrote. */
  LikesSynced: MetricUnit.Count,
  /** A scheduled function's run that threw (it is retried by the Scheduler, then dead-lettered). */
  ScheduledRunFailed: MetricUnit.Count,
  /** Queued point requests (lib/points/queue): accepted (202), applied (DONE), rejected (REJECTED), runs handed back for a retry. */
  PointRequestQueued: MetricUnit.Count,
  PointRequestApplied: MetricUnit.Count,
  PointRequestRejected: MetricUnit.Count,
  PointRequestRetried: MetricUnit.Count,
  /** Records the mapping gave up on (sent to the on-failure destination). */
  PointRequestDeadLettered: MetricUnit.Count,
  /** Age of the oldest record of a consumer batch: the stream's lag, as the consumer sees it. */
  PointRequestAgeMs: MetricUnit.Milliseconds,
} as const;

export type MetricName = keyof typeof METRICS;

type Recorded = Map<MetricName, number[]>;
const scope = new AsyncLocalStorage<Recorded>();

/** Records a value for the running invocation, e.g. metric('LikeAdded') or metric('LockWaitMs', 42). */
export function metric(name: MetricName, value = 1): void {
  const recorded = scope.getStore();
  if (!recorded) return;
  const values = recorded.get(name);
  if (values) values.push(value);
  else recorded.set(name, [value]);
}

/** Totals per metric, for the invocation's log line. */
export type MetricSummary = Partial<Record<MetricName, number>>;

/**
 * Runs fn collecting the metrics it records, then publishes them as one EMF
 * line (also when fn throws) and hands their totals to `done`.
 */
export async function withMetrics<T>(fn: () => Promise<T>, done: (summary: MetricSummary) => void = () => {}): Promise<T> {
  const recorded: Recorded = new Map();
  try {
    return await scope.run(recorded, fn);
  } finally {
    done(summarize(recorded));
    publish(recorded);
  }
}

function summarize(recorded: Recorded): MetricSummary {
  return Object.fromEntries([...recorded].map(([name, values]) => [name, values.reduce((sum, value) => sum + value, 0)]));
}

function publish(recorded: Recorded): void {
  // SILENT (the tests' level) silences every line; EMF lines are log lines too.
  if (recorded.size === 0 || logger.getLevelName() === 'SILENT') return;
  try {
    // A fresh instance per invocation: Powertools' store is process-wide, and
    // concurrent local requests would publish each other's values.
    const metrics = new Metrics({ namespace: config().metrics.namespace, serviceName: SERVICE_NAME });
    for (const [name, values] of recorded) for (const value of values) metrics.addMetric(name, METRICS[name], value);
    metrics.publishStoredMetrics();
  } catch (error) {
    // Losing a metric must never fail the request it describes.
    logger.warn('metrics not published', { error: (error as Error).message });
  }
}
