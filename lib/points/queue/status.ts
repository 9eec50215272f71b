import { db, type Database } from '../../platform/db';
import { NotFoundError } from '../../platform/errors';
import { redis, type RedisClient } from '../../platform/redis/client';
import { acceptedMarkerKey } from './keys';

/**
 * GET /points/requests/{requestId}: the outcome row when the request was
 * applied or rejected (one Data API call); otherwise PENDING when its
 * accepted marker is in Redis (one command more), else 404. Both are looked
 * up under the caller's id, so another user's request is a 404 like one
 * that never existed.
 */
export type RequestStatus =
  | { requestId: string; status: 'PENDING' }
  | { requestId: string; status: 'DONE' | 'REJECTED'; statusCode: number; result: unknown };

export async function getPointRequest(
  userId: number,
  requestId: string,
  deps: { database?: Database; redis?: RedisClient } = {},
): Promise<RequestStatus> {
  const { rows } = await (deps.database ?? db()).query<{ status: 'DONE' | 'REJECTED'; status_code: number; result: string }>(
    'SELECT status, status_code, result::text AS result FROM point_requests WHERE request_id = :requestId AND user_id = :userId',
    { requestId, userId },
  );
  const row = rows[0];
  if (row) return { requestId, status: row.status, statusCode: row.status_code, result: JSON.parse(row.result) };
  if ((await (deps.redis ?? redis()).exists(acceptedMarkerKey(userId, requestId))) === 1) return { requestId, status: 'PENDING' };
  throw new NotFoundError(`no point request ${requestId}`);
}
