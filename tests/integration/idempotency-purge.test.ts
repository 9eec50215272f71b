import { handler } from '../../functions/purge-idempotency-keys';
import { purgeStoredReplies } from '../../lib/points/idempotency';
import { useTestDatabase } from '../support/database';

/** The daily purge of stored Idempotency-Key replies, through the real Data API. */

const t = useTestDatabase();

async function storeReplies(count: number, ageHours: number, keyPrefix: string): Promise<void> {
  await t.pg.query(
    `INSERT INTO idempotency_keys (user_id, route, idempotency_key, request_hash, status_code, response_body, created_at)
     SELECT 1, 'POST /points/charge', $1 || n, 'hash', 200, '{}', now() - make_interval(hours => $2::int)
     FROM generate_series(1, $3::int) AS n`,
    [keyPrefix, ageHours, count],
  );
}

async function keysLeft(): Promise<string[]> {
  const { rows } = await t.pg.query<{ k: string }>('SELECT idempotency_key AS k FROM idempotency_keys ORDER BY 1');
  return rows.map((row) => row.k);
}

beforeEach(async () => {
  await t.pg.query('TRUNCATE idempotency_keys');
});

it('deletes only replies older than the retention, in batches, and keeps every reply younger than a day', async () => {
  await storeReplies(23, 8 * 24, 'old-');
  await storeReplies(3, 23, 'fresh-');
  await storeReplies(2, 6 * 24, 'kept-');

  expect(await purgeStoredReplies(7, t.db, 5)).toBe(23);
  expect(await keysLeft()).toEqual(['fresh-1', 'fresh-2', 'fresh-3', 'kept-1', 'kept-2']);

  // A second run finds nothing left to do.
  expect(await purgeStoredReplies(7, t.db, 5)).toBe(0);
  expect(await purgeStoredReplies(1, t.db)).toBe(2);
  expect(await keysLeft()).toEqual(['fresh-1', 'fresh-2', 'fresh-3']);
});

it('runs as the scheduled function with the configured retention (7 days by default)', async () => {
  await storeReplies(4, 8 * 24, 'old-');
  await storeReplies(1, 1, 'fresh-');
  expect(await handler()).toEqual({ purged: 4, purgedRequests: 0, purgedQueued: 0 });
  expect(await keysLeft()).toEqual(['fresh-1']);
});
