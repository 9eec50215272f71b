import { db } from './db';
import { currentDeadline } from './deadline';
import { redis } from './redis/client';

export type PartStatus = 'ok' | 'down';
export interface HealthReport {
  redis: PartStatus;
  database: PartStatus;
}

/**
 * Longest a part may take to answer before it counts as down. A health check
 * is asked by load balancers and people who want a quick yes or no; an
 * Aurora cluster resuming from auto-pause (about 15 s) is down for them.
 */
const PROBE_BUDGET_MS = 1500;

/**
 * Pings both dependencies at once; a failure marks its part down, never
 * throws. Each probe stops waiting at min(PROBE_BUDGET_MS, the request's
 * deadline), so a part that does not answer (Redis paused, a black-holed
 * endpoint) is "down" within that, whatever its client's own timeouts are.
 */
export async function checkHealth(): Promise<HealthReport> {
  const budgetMs = Math.min(PROBE_BUDGET_MS, currentDeadline().remainingMs());
  const [redisPart, databasePart] = await Promise.all([
    probe(() => redis().ping(), budgetMs),
    probe(() => db().query('SELECT 1 AS ok'), budgetMs),
  ]);
  return { redis: redisPart, database: databasePart };
}

async function probe(check: () => Promise<unknown>, budgetMs: number): Promise<PartStatus> {
  let timer: NodeJS.Timeout | undefined;
  // setTimeout runs on the monotonic clock: a wall-clock step cannot stretch it.
  const timedOut = new Promise<PartStatus>((resolve) => {
    timer = setTimeout(() => resolve('down'), Math.max(1, budgetMs));
  });
  // A check that throws at once (no Redis client without its secret) is a part that is down.
  const answered = Promise.resolve().then(check).then(
    (): PartStatus => 'ok',
    (): PartStatus => 'down',
  );
  try {
    return await Promise.race([answered, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
