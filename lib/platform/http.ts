import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyStructuredResultV2,
  Context,
} from 'aws-lambda';
import * as z from 'zod/mini';
import './zod-messages';
import { config } from './config';
import { deadlineOf, withDeadline } from './deadline';
import { AppError, DependencyUnavailableError, InternalError, ValidationError } from './errors';
import { logger } from './logger';
import { metric } from './metrics';
import { correlationId, observe } from './observability';
import { unavailableDependency } from './dependency-errors';

/**
 * HTTP plumbing shared by every handler: parsing and validating input, and the
 * one mapper from errors to RFC 9457 problem+json.
 */

export type HttpEvent = APIGatewayProxyEventV2 & {
  requestContext: APIGatewayProxyEventV2['requestContext'] & {
    authorizer?: { jwt?: { claims?: Record<string, unknown> } };
  };
};
export type HttpResult = APIGatewayProxyStructuredResultV2 & { statusCode: number };
export type HttpHandler = (event: HttpEvent, context: Context) => Promise<HttpResult>;

/** Ids are integers 1 .. 2^53-1: the Data API moves bigints as JSON numbers. */
export const MAX_ID = Number.MAX_SAFE_INTEGER;
export const idNumber = z.number().check(z.int(), z.minimum(1), z.maximum(MAX_ID));
/** An id in a path or query: plain digits, no sign, no leading zero, no exponent. */
export const idString = z
  .pipe(z.string().check(z.regex(/^[1-9][0-9]{0,15}$/, 'must be a positive integer id')), z.transform(Number))
  .check(z.refine((n) => n <= MAX_ID, 'must be at most 9007199254740991'));

export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResult {
  return {
    statusCode,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  };
}

export function problem(error: AppError): HttpResult {
  const headers: Record<string, string> = { 'content-type': 'application/problem+json' };
  if (error.retryAfterSeconds !== undefined) headers['retry-after'] = String(error.retryAfterSeconds);
  // A 500 says nothing about why: its detail is fixed, the cause is logged.
  const detail = error instanceof InternalError ? 'An unexpected error occurred.' : error.detail;
  return {
    statusCode: error.status,
    headers,
    // `instance` is the request's correlation id: the key to its log lines and its HTTP API access log entry.
    body: JSON.stringify({ type: 'about:blank', title: error.title, status: error.status, code: error.code, detail, instance: correlationId() }),
  };
}

/** Maps anything thrown to the AppError a client may see. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  const dependency = unavailableDependency(error);
  if (dependency) return new DependencyUnavailableError(dependency, { cause: error });
  return new InternalError('unexpected error', { cause: error });
}

/**
 * Wraps a handler: the request runs under one deadline (lib/platform/deadline)
 * derived from the invocation's remaining time; every throw becomes
 * problem+json, 5xx are logged with their cause.
 */
export function httpHandler(fn: HttpHandler): HttpHandler {
  config(); // validate the environment at cold start, not on the first request
  return (event, context) =>
    observe(
      { context, route: event.routeKey, correlationId: event.requestContext?.requestId },
      'request',
      (outcome) => ('result' in outcome ? { status: outcome.result.statusCode } : { status: 500 }),
      async () => {
        try {
          const result = await withDeadline(deadlineOf(context), () => fn(event, context));
          if (result.headers?.['idempotent-replayed'] === 'true') metric('IdempotentReplay');
          return result;
        } catch (thrown) {
          const error = toAppError(thrown);
          if (error.code === 'LOCK_TIMEOUT') metric('LockTimeout');
          if (error.code === 'DEPENDENCY_UNAVAILABLE') metric('DependencyFailure');
          if (error.status >= 500) {
            logger.error('request failed', { code: error.code, route: event.routeKey, error: error.cause ?? error });
          }
          return problem(error);
        }
      },
    );
}

function describe(error: z.core.$ZodError): string {
  return error.issues
    .map((issue) => (issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
    .join('; ');
}

// Any zod 4 schema (mini or classic): parsing goes through zod/mini's function, not a method.
export function validate<S extends z.core.$ZodType>(schema: S, value: unknown, where: string): z.output<S> {
  const parsed = z.safeParse(schema, value);
  if (!parsed.success) throw new ValidationError(`${where}: ${describe(parsed.error)}`);
  return parsed.data;
}

/** The body is JSON whatever the content type says; no body counts as not JSON. */
export function parseBody<S extends z.core.$ZodType>(event: HttpEvent, schema: S): z.output<S> {
  const raw = event.body === undefined ? undefined : event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  let value: unknown;
  try {
    value = JSON.parse(raw ?? '');
  } catch {
    throw new ValidationError('body: is not valid JSON');
  }
  return validate(schema, value, 'body');
}

export function pathId(event: HttpEvent, name: string): number {
  return validate(idString, event.pathParameters?.[name], `path ${name}`);
}

/** A query count: plain decimal digits 1 .. max (no sign, no leading zero, no exponent), or `fallback` when absent. */
export const queryCount = (max: number, fallback: number) =>
  z._default(
    z
      .pipe(z.string().check(z.regex(/^[1-9][0-9]*$/, `must be an integer from 1 to ${max}`)), z.transform(Number))
      .check(z.refine((n) => n <= max, `must be an integer from 1 to ${max}`)),
    fallback,
  );

/**
 * Query parameters from the raw query string: API Gateway joins a repeated
 * parameter with commas in queryStringParameters, which would hide it.
 */
export function parseQuery<S extends z.core.$ZodType>(event: HttpEvent, schema: S): z.output<S> {
  const params = new URLSearchParams(event.rawQueryString ?? '');
  const values: Record<string, string> = {};
  for (const [key, value] of params) {
    if (key in values) throw new ValidationError(`query ${key}: must not be repeated`);
    values[key] = value;
  }
  return validate(schema, values, 'query');
}

export function header(event: HttpEvent, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(event.headers ?? {})) {
    if (key.toLowerCase() === wanted) return value;
  }
  return undefined;
}
