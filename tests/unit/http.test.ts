import * as z from 'zod/mini';
import { DependencyUnavailableError, InternalError, LockTimeoutError, NotFoundError, ValidationError } from '../../lib/platform/errors';
import { header, httpHandler, idString, json, parseBody, parseQuery, pathId, problem, type HttpHandler } from '../../lib/platform/http';
import { bodyOf, httpEvent, lambdaContext } from '../support/events';

const event = (input: Partial<Parameters<typeof httpEvent>[0]> = {}) => httpEvent({ routeKey: 'POST /orders', ...input });
const run = (fn: HttpHandler) => httpHandler(fn)(event(), lambdaContext());

describe('problem+json', () => {
  it('has the RFC 9457 shape and content type', () => {
    const result = problem(new NotFoundError('post 5 does not exist'));
    expect(result.statusCode).toBe(404);
    expect(result.headers).toEqual({ 'content-type': 'application/problem+json' });
    expect(bodyOf(result)).toEqual({ type: 'about:blank', title: 'Not found', status: 404, code: 'NOT_FOUND', detail: 'post 5 does not exist' });
  });

  it('carries Retry-After when the client should come back', () => {
    expect(problem(new LockTimeoutError('busy', 2)).headers).toMatchObject({ 'retry-after': '2' });
    expect(problem(new DependencyUnavailableError('redis')).headers).toMatchObject({ 'retry-after': '1' });
  });

  it('says nothing about the cause of a 500', () => {
    const body = problem(new InternalError('pool exhausted at db.ts:42')).body!;
    expect(body).not.toContain('pool exhausted');
    expect(JSON.parse(body)).toMatchObject({ status: 500, code: 'INTERNAL' });
  });
});

describe('httpHandler', () => {
  it('passes a result through', async () => {
    const result = await run(async () => json(201, { ok: true }, { location: '/x' }));
    expect(result).toEqual({ statusCode: 201, headers: { 'content-type': 'application/json', location: '/x' }, body: '{"ok":true}' });
  });

  it('maps an AppError to its problem', async () => {
    const result = await run(async () => {
      throw new ValidationError('body: amount must be positive');
    });
    expect(result.statusCode).toBe(400);
    expect(bodyOf(result)).toMatchObject({ code: 'VALIDATION_ERROR', detail: 'body: amount must be positive' });
  });

  it('turns anything else into a bare 500 without internals', async () => {
    const result = await run(async () => {
      throw new TypeError("Cannot read properties of undefined (reading 'secret_column')");
    });
    expect(result.statusCode).toBe(500);
    expect(result.headers).toEqual({ 'content-type': 'application/problem+json' });
    expect(result.body).not.toMatch(/secret_column|TypeError|at /);
    // `instance` is the request's id (the event's requestContext.requestId), nothing internal.
    expect(bodyOf(result)).toEqual({
      type: 'about:blank',
      title: 'Internal error',
      status: 500,
      code: 'INTERNAL',
      detail: 'An unexpected error occurred.',
      instance: expect.stringMatching(/^req-/),
    });
  });

  it('turns an unreachable Redis into a 503 with Retry-After', async () => {
    const result = await run(async () => {
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });
    });
    expect(result.statusCode).toBe(503);
    expect(result.headers).toMatchObject({ 'retry-after': '1' });
    expect(bodyOf(result)).toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE' });
  });
});

describe('idString', () => {
  it.each([
    ['1', 1],
    ['10', 10],
    ['9007199254740991', 9007199254740991],
  ])('accepts %j', (text, id) => {
    expect(idString.parse(text)).toBe(id);
  });

  it.each(['0', '01', '-1', '+1', '1e3', '1.0', '0x10', ' 1', '1 ', '', '9007199254740992', '10000000000000000', '１'])('refuses %j', (text) => {
    expect(idString.safeParse(text).success).toBe(false);
  });
});

it('pathId answers a bad id with a 400', () => {
  expect(pathId(event({ pathParameters: { postId: '12' } }), 'postId')).toBe(12);
  expect(() => pathId(event({ pathParameters: { postId: '012' } }), 'postId')).toThrow(ValidationError);
  expect(() => pathId(event(), 'postId')).toThrow(ValidationError);
});

describe('parseQuery', () => {
  const integer = () => z.optional(z.coerce.number().check(z.int()));
  const schema = z.object({ days: integer(), limit: integer() });

  it('reads the raw query string', () => {
    expect(parseQuery(event({ rawQueryString: 'days=3&limit=5' }), schema)).toEqual({ days: 3, limit: 5 });
    expect(parseQuery(event({ rawQueryString: '' }), schema)).toEqual({});
  });

  it('refuses a repeated parameter, which API Gateway would join with a comma', () => {
    const repeated = { ...event({ rawQueryString: 'days=3&days=4' }), queryStringParameters: { days: '3,4' } };
    expect(() => parseQuery(repeated, schema)).toThrow(/days: must not be repeated/);
  });

  it('answers a value of the wrong type with a 400', () => {
    expect(() => parseQuery(event({ rawQueryString: 'days=three' }), schema)).toThrow(ValidationError);
  });
});

describe('parseBody', () => {
  const schema = z.object({ amount: z.number().check(z.int()) });

  it('parses JSON whatever the content type says', () => {
    expect(parseBody(event({ body: '{"amount":5}', headers: { 'content-type': 'text/plain' } }), schema)).toEqual({ amount: 5 });
  });

  it('decodes a base64-encoded body', () => {
    const encoded = { ...event(), body: Buffer.from('{"amount":7}').toString('base64'), isBase64Encoded: true };
    expect(parseBody(encoded, schema)).toEqual({ amount: 7 });
  });

  it.each([
    ['no body', undefined],
    ['an empty body', ''],
    ['a body that is not JSON', '{"amount":'],
    ['a base64 body read as text', Buffer.from('{"amount":7}').toString('base64')],
  ])('answers %s with a 400', (_, body) => {
    expect(() => parseBody(event({ body }), schema)).toThrow(new ValidationError('body: is not valid JSON'));
  });

  it('answers a field of the wrong type with a 400 naming it', () => {
    expect(() => parseBody(event({ body: { amount: '5' } }), schema)).toThrow(/body: amount/);
  });

  // zod/mini loads no locale of its own: without lib/platform/zod-messages every issue reads "Invalid input".
  it('says what is wrong with a field, in the words of zod classic', () => {
    expect(() => parseBody(event({ body: { amount: '5' } }), schema)).toThrow(
      new ValidationError('body: amount: Invalid input: expected number, received string'),
    );
    expect(() => parseBody(event({ body: { amount: 1.5 } }), schema)).toThrow(new ValidationError('body: amount: Invalid input: expected int, received number'));
  });
});

it('reads headers whatever their case', () => {
  const withHeaders = event({ headers: { 'Idempotency-Key': 'k-1' } });
  expect(header(withHeaders, 'idempotency-key')).toBe('k-1');
  expect(header(withHeaders, 'IDEMPOTENCY-KEY')).toBe('k-1');
  expect(header(withHeaders, 'authorization')).toBeUndefined();
});
