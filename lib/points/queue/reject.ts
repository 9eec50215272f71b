import * as z from 'zod/mini';
import { asJson, db, type Database } from '../../platform/db';
import { idNumber } from '../../platform/http';
import { logger } from '../../platform/logger';
import { metric } from '../../platform/metrics';
import type { StreamRecord } from './apply';
import { REQUEST_ID } from './record';

/** What a REJECTED row needs: a record whose body does not decode still names its request. */
const named = z.object({
  id: z.string().check(z.regex(REQUEST_ID)),
  user: idNumber,
  route: z.enum(['POST /points/charge', 'POST /orders']),
  at: z.number(),
});

/**
 * The on-failure destination's side: records the mapping gave up on (every
 * retry failed, or the record grew older than the mapping keeps trying) end
 * REJECTED with 503 and change nothing. The row is written only where the
 * request id has none: a request that was applied after all (a reply lost
 * with the commit) keeps its outcome, and a statement still on its way for
 * it fails on the row's primary key. No lock: the row alone decides.
 *
 * Returns the request ids rejected now. Records that do not decode name no
 * request: they are logged (the destination keeps them) and counted.
 */
export async function rejectRecords(records: StreamRecord[], database: Database = db()): Promise<string[]> {
  const requests: { id: string; user: number; route: string; at: number }[] = [];
  for (const record of records) {
    let value: unknown;
    try {
      value = JSON.parse(record.data);
    } catch {
      value = undefined;
    }
    const parsed = z.safeParse(named, value);
    if (parsed.success) requests.push(parsed.data);
    else logger.error('dead-lettered record names no request', { sequenceNumber: record.sequenceNumber });
  }
  metric('PointRequestDeadLettered', records.length);
  if (requests.length === 0) return [];
  const { rows } = await database.query<{ request_id: string }>(REJECT, { requests: asJson(requests) }, { timeoutMs: 5000 });
  const rejected = rows.map((row) => row.request_id);
  metric('PointRequestRejected', rejected.length);
  logger.warn('queued requests rejected after the last retry', { requestIds: rejected });
  return rejected;
}

const REJECT = `
INSERT INTO point_requests (request_id, user_id, route, status, status_code, result, accepted_at)
SELECT r.id, r.user, r.route, 'REJECTED', 503,
  json_build_object('type', 'about:blank', 'title', 'Service unavailable', 'status', 503, 'code', 'DEPENDENCY_UNAVAILABLE',
    'detail', 'the request could not be applied after every retry; nothing was changed', 'instance', r.id),
  to_timestamp(r.at / 1000.0)
FROM jsonb_to_recordset(CAST(:requests AS jsonb)) AS r(id text, "user" bigint, route text, at bigint)
ON CONFLICT (request_id) DO NOTHING
RETURNING request_id`;
