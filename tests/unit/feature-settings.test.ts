import { ConfigError, parseSettings } from '../../lib/platform/config';
import { likesSchema } from '../../lib/likes/settings';
import { queueSchema } from '../../lib/points/queue/settings';
import { parsePointsSettings } from '../../lib/points/settings';

/** Each feature's settings are validated as the platform's are: a bad value is refused with the variable's name. */

// The platform's variables: what tests/support/env.ts gives every test file.
const base = process.env;

it('applies the documented defaults', () => {
  expect(parseSettings(likesSchema, {})).toEqual({
    LIKES_POST_RECHECK_SECONDS: 300,
    LIKES_REBUILD_LEASE_MS: 5000,
    LIKES_REBUILD_CHUNK_SIZE: 2000,
    LIKES_SYNC_BATCH_SIZE: 1000,
  });
  expect(parsePointsSettings(base)).toMatchObject({ POINT_LOCK_STRATEGY: 'notify', POINT_LOCK_LEASE_MS: 2000, POINT_LOCK_MAX_WAITERS: 256 });
  expect(parseSettings(queueSchema, { POINT_REQUEST_STREAM: '' })).toMatchObject({ POINT_REQUEST_STREAM: 'point-requests' }); // '' is "not set"
});

it.each([
  ['a non-numeric batch size', () => parseSettings(likesSchema, { LIKES_SYNC_BATCH_SIZE: 'many' }), /LIKES_SYNC_BATCH_SIZE/],
  ['an unknown lock strategy', () => parsePointsSettings({ ...base, POINT_LOCK_STRATEGY: 'wait' }), /POINT_LOCK_STRATEGY/],
  ['a negative waiter cap', () => parsePointsSettings({ ...base, POINT_LOCK_MAX_WAITERS: '-1' }), /POINT_LOCK_MAX_WAITERS/],
  ['a zero marker lifetime', () => parseSettings(queueSchema, { POINT_REQUEST_MARKER_TTL_S: '0' }), /POINT_REQUEST_MARKER_TTL_S/],
])('refuses %s, naming the variable', (_, parse, name) => {
  expect(parse).toThrow(ConfigError);
  expect(parse).toThrow(name);
});

it("fails the cold start's config() call on a bad feature setting", () => {
  const saved = { ...process.env };
  try {
    process.env.LIKES_REBUILD_CHUNK_SIZE = 'lots';
    jest.isolateModules(() => {
      /* eslint-disable @typescript-eslint/no-require-imports */
      const { config } = require('../../lib/platform/config') as typeof import('../../lib/platform/config');
      require('../../lib/likes/settings');
      /* eslint-enable @typescript-eslint/no-require-imports */
      expect(() => config()).toThrow(/LIKES_REBUILD_CHUNK_SIZE/);
    });
  } finally {
    process.env = saved;
  }
});
