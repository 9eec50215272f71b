import * as z from 'zod/mini';
import { httpHandler, json, parseBody } from '../../lib/platform/http';
import { canonicalJson, parseKeyedRequest, requestHash } from '../../lib/points/idempotency';
import { chargeRequest } from '../../lib/points/points';
import { bodyOf, httpEvent, lambdaContext } from '../support/events';

/**
 * A body is client input, and JSON.parse takes nesting far deeper than any
 * recursion (JSON.stringify included) survives: a deep unknown field must be
 * ignored like any other, never a 5xx.
 */

const DEPTH = 100_000;
const deepBody = (depth = DEPTH) => `{"amount":3,"pad":${'['.repeat(depth)}${']'.repeat(depth)}}`;
const charge = (body: string, headers: Record<string, string> = {}) =>
  httpEvent({ routeKey: 'POST /points/charge', body, headers, userId: 1 });

describe('canonicalJson', () => {
  it('canonicalizes 100,000 levels of nesting without recursion', () => {
    const text = canonicalJson(JSON.parse(deepBody()));
    expect(text).toBe(`{"amount":3,"pad":${'['.repeat(DEPTH)}${']'.repeat(DEPTH)}}`);
  });

  it('sorts keys at every depth, deep objects too', () => {
    const deep = (depth: number) => JSON.parse(`${'{"b":1,"a":'.repeat(depth)}null${'}'.repeat(depth)}`);
    const text = canonicalJson(deep(50_000));
    expect(text.startsWith('{"a":{"a":')).toBe(true);
    expect(text.includes('{"a":null,"b":1},"b":1}')).toBe(true);
    expect(text.endsWith(',"b":1}'.repeat(3))).toBe(true);
    expect(text.length).toBe(50_000 * '{"a":,"b":1}'.length + 'null'.length);
  });

  it('writes what JSON.stringify writes for plain values', () => {
    const value = JSON.parse('{"s":"a\\"b\\u0000","n":-1.5e-7,"t":true,"f":false,"z":null,"e":[],"o":{},"l":[1,[2,[3]],{"k":"v"}]}');
    expect(canonicalJson(value)).toBe('{"e":[],"f":false,"l":[1,[2,[3]],{"k":"v"}],"n":-1.5e-7,"o":{},"s":"a\\"b\\u0000","t":true,"z":null}');
    expect(canonicalJson(5)).toBe('5');
    expect(canonicalJson('x')).toBe('"x"');
    expect(canonicalJson(null)).toBe('null');
  });
});

describe('a deeply nested body', () => {
  it('is parsed, validated and hashed with an Idempotency-Key', () => {
    const { body, idempotency } = parseKeyedRequest(charge(deepBody(), { 'Idempotency-Key': 'deep-1' }), chargeRequest, 'POST /points/charge');
    expect(body).toEqual({ amount: 3 });
    expect(idempotency?.requestHash).toMatch(/^[0-9a-f]{64}$/);
    // The same JSON value, differently spaced: the same hash.
    const spaced = `{ "pad" : ${'[ '.repeat(DEPTH)}${' ]'.repeat(DEPTH)}, "amount" : 3 }`;
    expect(parseKeyedRequest(charge(spaced, { 'Idempotency-Key': 'deep-1' }), chargeRequest, 'POST /points/charge').idempotency?.requestHash).toBe(
      idempotency?.requestHash,
    );
    expect(requestHash(JSON.parse(deepBody(DEPTH - 1)))).not.toBe(idempotency?.requestHash);
  });

  it('goes through parseBody and a handler without a 5xx', async () => {
    expect(parseBody(charge(deepBody()), chargeRequest)).toEqual({ amount: 3 });
    expect(() => parseBody(charge(`{"amount":${'['.repeat(DEPTH)}${']'.repeat(DEPTH)}}`), chargeRequest)).toThrow(/^body: amount/);
    const handler = httpHandler(async (event) => json(200, parseKeyedRequest(event, z.object({ amount: z.number() }), 'POST /points/charge').body));
    const result = await handler(charge(deepBody(), { 'Idempotency-Key': 'deep-2' }), lambdaContext());
    expect(result.statusCode).toBe(200);
    expect(bodyOf(result)).toEqual({ amount: 3 });
  });
});
