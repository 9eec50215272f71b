import type { CallOptions, Queryable, QueryResult, SqlParams } from './db';

/**
 * A Queryable that loads the Data API client (./db, and with it the AWS SDK:
 * about 70 ms of a cold start) on its first statement, for code that needs
 * the database on some paths only: the likes answer from Redis and ask the
 * database only for a post's author, once per post and recheck period.
 *
 * esbuild keeps ./db out of the init only while every import of it in a
 * bundle is dynamic or type-only: one plain `import { db }` anywhere in a
 * function's code brings the SDK back into every cold start of it.
 */
const handle: Queryable = {
  async query<Row = Record<string, unknown>>(sql: string, params?: SqlParams, options?: CallOptions): Promise<QueryResult<Row>> {
    const { db } = await import('./db');
    return db().query<Row>(sql, params, options);
  },
};

/** The Lambda instance's database handle, loaded on its first statement. */
export const lazyDb = (): Queryable => handle;
