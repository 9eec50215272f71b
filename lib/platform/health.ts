import { db } from './db';
import { redis } from './redis';

export type PartStatus = 'ok' | 'down';
export interface HealthReport {
  redis: PartStatus;
  database: PartStatus;
}

/** Pings both dependencies at once; a failure marks its part down, never throws. */
export async function checkHealth(): Promise<HealthReport> {
  const [redisPart, databasePart] = await Promise.all([
    probe(() => redis().ping()),
    probe(() => db().query('SELECT 1 AS ok')),
  ]);
  return { redis: redisPart, database: databasePart };
}

async function probe(check: () => Promise<unknown>): Promise<PartStatus> {
  try {
    await check();
    return 'ok';
  } catch {
    return 'down';
  }
}
