import { ValidationError } from '../../lib/platform/errors';
import { canonicalJson, parseKeyedRequest, requestHash } from '../../lib/points/idempotency';
import { chargeRequest } from '../../lib/points/points';
import { httpEvent } from '../support/events';

describe('requestHash', () => {
  it('is the same for the same JSON value, whatever the key order or number spelling', () => {
    const a = JSON.parse('{"amount": 5, "meta": {"x": [1, {"b": 2, "a": 1}], "y": null}}');
    const b = JSON.parse('{"meta": {"y": null, "x": [1.0, {"a": 1, "b": 2}]}, "amount": 5e0}');
    expect(canonicalJson(a)).toBe('{"amount":5,"meta":{"x":[1,{"a":1,"b":2}],"y":null}}');
    expect(requestHash(a)).toBe(requestHash(b));
  });

  it('differs for different values, array orders and types', () => {
    const hashes = [{ amount: 5 }, { amount: 6 }, { amount: '5' }, { items: [1, 2] }, { items: [2, 1] }, { amount: 5, extra: true }].map(requestHash);
    expect(new Set(hashes).size).toBe(hashes.length);
  });
});

describe('parseKeyedRequest', () => {
  const parse = (body: unknown, headers: Record<string, string> = {}) =>
    parseKeyedRequest(httpEvent({ routeKey: 'POST /points/charge', body, headers, userId: 1 }), chargeRequest, 'POST /points/charge');

  it('hashes the body as sent, unknown fields included', () => {
    const { body, idempotency } = parse({ amount: 5, note: 'gift' }, { 'Idempotency-Key': 'k-1' });
    expect(body).toEqual({ amount: 5 });
    expect(idempotency).toEqual({ route: 'POST /points/charge', key: 'k-1', requestHash: requestHash({ amount: 5, note: 'gift' }) });
  });

  it('has no key without the header, and reads it whatever its case', () => {
    expect(parse({ amount: 5 }).idempotency).toBeUndefined();
    expect(parse({ amount: 5 }, { 'idempotency-key': 'abc' }).idempotency?.key).toBe('abc');
  });

  it('checks the body before the header', () => {
    expect(() => parse({ amount: 0 }, { 'Idempotency-Key': 'bad key' })).toThrow(/^body: /);
    expect(() => parse({ amount: 1 }, { 'Idempotency-Key': 'bad key' })).toThrow(/^Idempotency-Key header: /);
  });

  it.each([
    ['empty', ''],
    ['a space', 'a b'],
    ['256 characters', 'k'.repeat(256)],
    ['non-ASCII', 'clé'],
    ['a control character', 'a\u0001'],
  ])('rejects a key with %s', (_, value) => {
    expect(() => parse({ amount: 1 }, { 'Idempotency-Key': value })).toThrow(ValidationError);
  });

  it('accepts every character from ! to ~', () => {
    const all = Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i)).join('');
    expect(parse({ amount: 1 }, { 'Idempotency-Key': all }).idempotency?.key).toBe(all);
  });
});
