import { AsyncLocalStorage } from 'node:async_hooks';
import { LogFormatter, LogItem, Logger } from '@aws-lambda-powertools/logger';
import type { LogAttributes, UnformattedAttributes } from '@aws-lambda-powertools/logger/types';

/**
 * Structured JSON logs; level from POWERTOOLS_LOG_LEVEL (tests set SILENT).
 *
 * Every line written during an invocation carries that invocation's keys
 * (request id, cold start, function name, route, correlation id). They live in
 * an AsyncLocalStorage rather than in the Logger's own appendKeys/addContext,
 * which are process-wide: serverless-offline runs concurrent requests in one
 * process, and their keys would otherwise leak into each other's lines.
 */

export const SERVICE_NAME = 'likes-points-popular';

export interface InvocationKeys {
  function_request_id: string;
  function_name: string;
  cold_start: boolean;
  /** The HTTP API route key, e.g. 'POST /posts/{postId}/likes', or the schedule's function. */
  route?: string;
  /** API Gateway's request id: the same id is in the access log and in problem bodies (`instance`). */
  correlation_id?: string;
  xray_trace_id?: string;
}

const scope = new AsyncLocalStorage<InvocationKeys>();

class InvocationFormatter extends LogFormatter {
  override formatAttributes(attributes: UnformattedAttributes, additional: LogAttributes): LogItem {
    const keys = scope.getStore();
    return new LogItem({
      attributes: {
        level: attributes.logLevel,
        message: attributes.message,
        timestamp: this.formatTimestamp(attributes.timestamp),
        service: attributes.serviceName,
        ...(keys ?? {}),
      },
    }).addAttributes(additional);
  }
}

export const logger = new Logger({ serviceName: SERVICE_NAME, logFormatter: new InvocationFormatter() });

let coldStart = true;

/** True only for the first invocation this process serves. */
export function takeColdStart(): boolean {
  const first = coldStart;
  coldStart = false;
  return first;
}

/** Runs fn with every log line it writes carrying these keys. */
export function withLogKeys<T>(keys: InvocationKeys, fn: () => Promise<T>): Promise<T> {
  return scope.run(keys, fn);
}

/** The keys of the invocation running now, if any. */
export function invocationKeys(): InvocationKeys | undefined {
  return scope.getStore();
}
