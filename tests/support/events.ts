import type { Context } from 'aws-lambda';
import type { HttpEvent } from '../../lib/platform/http';

/**
 * API Gateway HTTP API (payload 2.0) events for calling handlers directly,
 * shaped as the JWT authorizer delivers them in AWS. Pass `userId: undefined`
 * for an unauthenticated call.
 */
export interface EventInput {
  routeKey: string; // e.g. 'POST /posts/{postId}/likes'
  pathParameters?: Record<string, string>;
  rawQueryString?: string;
  body?: unknown; // objects are JSON-encoded; strings are sent as they are
  headers?: Record<string, string>;
  userId?: number | string;
}

export function httpEvent(input: EventInput): HttpEvent {
  const [method, routePath] = input.routeKey.split(' ') as [string, string];
  const rawPath = routePath.replace(/\{(\w+)\}/g, (_, name: string) => input.pathParameters?.[name] ?? '');
  const body = input.body === undefined ? undefined : typeof input.body === 'string' ? input.body : JSON.stringify(input.body);
  const claims = input.userId === undefined ? undefined : { sub: String(input.userId), iss: 'http://127.0.0.1/local-issuer', aud: 'local' };
  return {
    version: '2.0',
    routeKey: input.routeKey,
    rawPath,
    rawQueryString: input.rawQueryString ?? '',
    headers: { 'content-type': 'application/json', ...input.headers },
    queryStringParameters: input.rawQueryString ? Object.fromEntries(new URLSearchParams(input.rawQueryString)) : undefined,
    pathParameters: input.pathParameters,
    body,
    isBase64Encoded: false,
    requestContext: {
      accountId: '000000000000',
      apiId: 'test',
      domainName: 'test.local',
      domainPrefix: 'test',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'jest' },
      requestId: `req-${Math.random().toString(36).slice(2)}`,
      routeKey: input.routeKey,
      stage: '$default',
      time: new Date().toISOString(),
      timeEpoch: Date.now(),
      authorizer: claims ? { jwt: { claims, scopes: [] } } : undefined,
    },
  } as HttpEvent;
}

export function lambdaContext(remainingMs = 15000): Context {
  const deadline = Date.now() + remainingMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: 'test',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:test',
    memoryLimitInMB: '512',
    awsRequestId: `req-${Math.random().toString(36).slice(2)}`,
    logGroupName: 'test',
    logStreamName: 'test',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

/** Parses a handler result's JSON body. */
export function bodyOf<T = Record<string, unknown>>(result: { body?: string }): T {
  return JSON.parse(result.body ?? 'null') as T;
}
