import { db, deleteInBatches, type Database } from '../../platform/db';
import { pointsSettings } from '../settings';

/**
 * Deletes queued requests' outcome rows older than the Idempotency-Key
 * retention (IDEMPOTENCY_RETENTION_DAYS, 7), in batches, for the daily purge
 * (functions/purge-idempotency-keys). A row must outlive every delivery of
 * its record, or a redelivery would apply the request again: the stream
 * keeps a record 24 hours, and the mapping gives up on it after an hour.
 */
export async function purgePointRequests(
  retentionDays: number = pointsSettings().IDEMPOTENCY_RETENTION_DAYS,
  database: Database = db(),
  batchSize = 5000,
): Promise<number> {
  return deleteInBatches(
    database,
    `DELETE FROM point_requests WHERE request_id IN (
       SELECT request_id FROM point_requests
       WHERE applied_at < now() - make_interval(days => CAST(:retentionDays AS integer))
       LIMIT :batchSize
     )`,
    { retentionDays: Math.max(2, retentionDays) },
    batchSize,
    { timeoutMs: 10_000 },
  );
}
