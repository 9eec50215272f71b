import { db, deleteInBatches, type Database } from '../platform/db';

/**
 * Deletes balance_requests rows older than a day, in batches: they matter
 * only during their request. For the daily purge (functions/purge-idempotency-keys).
 */
export async function purgeBalanceRequests(database: Database = db(), olderThanHours = 24, batchSize = 5000): Promise<number> {
  return deleteInBatches(
    database,
    `DELETE FROM balance_requests WHERE request_id IN (
       SELECT request_id FROM balance_requests
       WHERE created_at < now() - make_interval(hours => CAST(:olderThanHours AS integer))
       LIMIT :batchSize
     )`,
    { olderThanHours },
    batchSize,
    // A batch may take longer than a request's statement; the purge runs alone, on a schedule.
    { timeoutMs: 10_000 },
  );
}
