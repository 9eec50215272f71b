import { Client } from 'pg';
import { migrate } from '../../db/migrate';
import { db, type Database } from '../../lib/db';

/**
 * Gives the calling test file its own migrated database (named by
 * tests/support/env.ts) behind the shared local Data API endpoint, and a
 * direct pg connection for arranging rows and checking results. The code
 * under test still goes through the Data API.
 */
export interface TestDatabase {
  db: Database;
  pg: Client;
  close(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = process.env.DB_NAME!;
  const admin = new Client({ connectionString: process.env.DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(process.env.DATABASE_URL!);
  url.pathname = `/${name}`;
  const pg = new Client({ connectionString: url.toString() });
  await pg.connect();
  await migrate(db());
  return { db: db(), pg, close: () => pg.end() };
}
