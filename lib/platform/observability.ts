import { randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';
import { config } from './config';
import { currentDeadline, deadlineOf, withDeadline } from './deadline';
import { invocationKeys, logger, takeColdStart, withLogKeys, type InvocationKeys } from './logger';
import { metric, withMetrics, type MetricSummary } from './metrics';
import { loadSecrets } from './secrets';
import { traceInvocation } from './tracing';

/**
 * What every function does around its work: log keys (request id, cold
 * start, function name, route, correlation id), metrics collected and
 * published as one EMF line, a trace subsegment when tracing is on, and one
 * INFO line that closes the invocation with its outcome, its duration and the
 * totals of the metrics it emitted.
 */

export interface Invocation {
  /** Absent when a CLI calls a scheduled handler directly. */
  context?: Context | undefined;
  /** The HTTP API route key, or the scheduled function's name. */
  route: string;
  correlationId?: string | undefined;
}

export type Outcome<T> = { result: T } | { error: unknown };

export async function observe<T>(
  invocation: Invocation,
  message: string,
  describe: (outcome: Outcome<T>) => Record<string, unknown>,
  fn: () => Promise<T>,
): Promise<T> {
  const keys: InvocationKeys = {
    // A CLI run has no Lambda request id; a random one still groups its lines.
    function_request_id: invocation.context?.awsRequestId ?? randomUUID(),
    function_name: invocation.context?.functionName ?? 'local',
    cold_start: takeColdStart(),
    route: invocation.route,
    ...correlationOf(invocation),
  };
  return withLogKeys(keys, () => {
    const started = performance.now();
    let outcome: Outcome<T> = { error: new Error('did not finish') };
    const close = (metrics: MetricSummary) =>
      logger.info(message, { ...describe(outcome), durationMs: Math.round(performance.now() - started), metrics });
    return withMetrics(
      () =>
        traceInvocation(invocation.route, { route: invocation.route }, async () => {
          try {
            await secretsLoaded(invocation.context);
            const result = await fn();
            outcome = { result };
            return result;
          } catch (error) {
            outcome = { error };
            throw error;
          }
        }),
      close,
    );
  });
}

/**
 * API Gateway's request id, the key of the access log. serverless-offline
 * gives every event the same placeholder there, so locally the invocation's
 * own (random) request id stands in.
 */
function correlationOf(invocation: Invocation): Pick<InvocationKeys, 'correlation_id'> {
  const id = config().offline ? invocation.context?.awsRequestId : invocation.correlationId;
  return id ? { correlation_id: id } : {};
}

/**
 * Wraps a scheduled function (EventBridge Scheduler target). A failure is
 * counted (ScheduledRunFailed, which an alarm watches) and thrown on: the
 * function's asynchronous invoke config (EventInvokeConfig, deploy/resources.js)
 * retries the run as fits its schedule, then sends it to the dead-letter queue.
 */
export function scheduledHandler<T>(
  name: string,
  fn: (context: Context | undefined) => Promise<T>,
): (event?: unknown, context?: Context) => Promise<T> {
  return (_event, context) =>
    observe(
      { context, route: name },
      'scheduled run',
      (outcome) => ('error' in outcome ? { outcome: 'failed', error: outcome.error } : { outcome: 'ok' }),
      async () => {
        try {
          return await fn(context);
        } catch (error) {
          metric('ScheduledRunFailed');
          throw error;
        }
      },
    );
}

/**
 * Secrets (lib/platform/secrets) are in memory before the work starts, read
 * within the invocation's deadline. SSM failing is not this request's error
 * to throw: lib/platform/redis then builds no client (a 503
 * DEPENDENCY_UNAVAILABLE for whatever needs Redis) and
 * the next invocation reads the parameter again.
 */
async function secretsLoaded(context: Context | undefined): Promise<void> {
  try {
    await withDeadline(context ? deadlineOf(context) : currentDeadline(), loadSecrets);
  } catch (error) {
    logger.error('secrets could not be read; Redis is unavailable to this invocation, the next one reads them again', { error });
  }
}

/** The correlation id of the running invocation: what problem bodies carry as `instance`. */
export function correlationId(): string | undefined {
  const keys = invocationKeys();
  return keys?.correlation_id ?? keys?.function_request_id;
}
