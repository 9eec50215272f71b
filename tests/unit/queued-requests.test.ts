import { prefersAsync } from '../../lib/points/queue/accept';
import { requestIdOf } from '../../lib/points/queue/record';
import { httpEvent } from '../support/events';

/** The accept path's pure parts: the Prefer header (RFC 7240) and the request id. */

const prefer = (value: string | undefined) =>
  prefersAsync(httpEvent({ routeKey: 'POST /points/charge', body: {}, headers: value === undefined ? {} : { Prefer: value }, userId: 1 }));

it('recognizes respond-async among preferences, in any case, with parameters', () => {
  expect(prefer('respond-async')).toBe(true);
  expect(prefer('RESPOND-ASYNC')).toBe(true);
  expect(prefer('wait=10, respond-async')).toBe(true);
  expect(prefer('respond-async; foo=bar')).toBe(true);
  expect(prefer(' respond-async ,handling=lenient')).toBe(true);
  expect(prefer(undefined)).toBe(false);
  expect(prefer('handling=lenient')).toBe(false);
  expect(prefer('respond-asynchronously')).toBe(false);
  expect(prefer('')).toBe(false);
});

it('derives the same request id from the same user, route and key, another for any other, and a random one without a key', () => {
  const key = (k: string) => ({ route: 'POST /points/charge', key: k, requestHash: 'h' });
  const id = requestIdOf(1, 'POST /points/charge', key('k1'));
  expect(id).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
  expect(requestIdOf(1, 'POST /points/charge', { ...key('k1'), requestHash: 'other body' })).toBe(id);
  expect(requestIdOf(2, 'POST /points/charge', key('k1'))).not.toBe(id);
  expect(requestIdOf(1, 'POST /orders', key('k1'))).not.toBe(id);
  expect(requestIdOf(1, 'POST /points/charge', key('k2'))).not.toBe(id);
  const random = requestIdOf(1, 'POST /points/charge', undefined);
  expect(random).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
  expect(requestIdOf(1, 'POST /points/charge', undefined)).not.toBe(random);
});
