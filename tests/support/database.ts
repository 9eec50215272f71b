import { Client } from 'pg';
import { migrate } from '../../db/migrate';
import { db, type Database } from '../../lib/platform/db';
import { closeRedis } from '../../lib/platform/redis/client';

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

/** The file's database as useTestDatabase() hands it out: there from beforeAll on. */
export interface TestDatabaseHandle {
  readonly db: Database;
  readonly pg: Client;
}

/**
 * The usual integration test file's setup: its database (createTestDatabase)
 * from before its first test until after its last, when this process's Redis
 * connection (lib/platform/redis) is closed too. Read `db` and `pg` in hooks and
 * tests, not at the top level: they exist only once beforeAll has run.
 */
export function useTestDatabase(): TestDatabaseHandle {
  let database: TestDatabase | undefined;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.close();
    await closeRedis();
  });
  const created = () => {
    if (!database) throw new Error('No test database: useTestDatabase() has not run its beforeAll, or it failed.');
    return database;
  };
  return {
    get db() {
      return created().db;
    },
    get pg() {
      return created().pg;
    },
  };
}
