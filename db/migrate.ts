import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Database } from '../lib/platform/db';

/**
 * Applies db/migrations/*.sql in name order through the Data API (so the same
 * runner works against Aurora), each in its own transaction together with its
 * row in schema_migrations. Safe to rerun and to run twice at once: an
 * advisory lock serializes runners, and applied versions are skipped.
 */

export const migrationsDir = join(__dirname, 'migrations');
const MIGRATION_LOCK = 7412001;

export async function migrate(database: Database, dir = migrationsDir): Promise<string[]> {
  await database.query(
    `CREATE TABLE IF NOT EXISTS schema_migrations (
       version    text PRIMARY KEY,
       applied_at timestamptz NOT NULL DEFAULT now()
     )`,
  );
  const files = (await readdir(dir)).filter((file) => file.endsWith('.sql')).sort();
  const applied: string[] = [];
  for (const file of files) {
    const version = file.replace(/\.sql$/, '');
    const statements = splitStatements(await readFile(join(dir, file), 'utf8'));
    const ran = await database.transaction(async (tx) => {
      // Migration 005 gives the database a short lock_timeout for requests; a
      // runner waiting for another's advisory lock (two stacks starting at
      // once), or a migration waiting for a table lock, must not fail on it.
      await tx.query("SELECT set_config('lock_timeout', '0', true), set_config('statement_timeout', '0', true)");
      await tx.query('SELECT pg_advisory_xact_lock(:lock)', { lock: MIGRATION_LOCK });
      const done = await tx.query('SELECT 1 FROM schema_migrations WHERE version = :version', { version });
      if (done.rows.length > 0) return false;
      // The Data API runs one statement per call.
      for (const statement of statements) await tx.query(statement);
      await tx.query('INSERT INTO schema_migrations (version) VALUES (:version)', { version });
      return true;
    });
    if (ran) applied.push(version);
  }
  return applied;
}

/**
 * Splits a migration into statements at semicolons that end a line, outside
 * dollar-quoted bodies (functions, DO blocks), and drops comment-only chunks.
 */
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let current: string[] = [];
  let inDollarQuote = false;
  for (const line of sql.split('\n')) {
    current.push(line);
    const code = line.replace(/--.*$/, '');
    if ((code.match(/\$\$/g) ?? []).length % 2 === 1) inDollarQuote = !inDollarQuote;
    if (!inDollarQuote && /;\s*$/.test(code)) {
      statements.push(current.join('\n'));
      current = [];
    }
  }
  statements.push(current.join('\n'));
  return statements
    .map((statement) => statement.trim().replace(/;\s*$/, ''))
    .filter((statement) => statement.replace(/--.*$/gm, '').trim().length > 0);
}

/**
 * Loads the demo seed when the database has no users, posts or items yet,
 * in one transaction whose TimeZone is the business zone: the seed's dates
 * (current_date) are then relative to the business day it is loaded on.
 */
export async function seedIfEmpty(database: Database, timeZone = 'Asia/Seoul', file = join(__dirname, 'seed.sql')): Promise<boolean> {
  const { rows } = await database.query<{ empty: boolean }>(
    'SELECT NOT (EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM posts) OR EXISTS (SELECT 1 FROM items)) AS empty',
  );
  if (!rows[0]?.empty) return false;
  const statements = splitStatements(await readFile(file, 'utf8'));
  await database.transaction(async (tx) => {
    await tx.query("SELECT set_config('TimeZone', :timeZone, true)", { timeZone });
    for (const statement of statements) await tx.query(statement);
  });
  return true;
}
