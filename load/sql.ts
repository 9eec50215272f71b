import { localSettings, useLocalStackEnv } from '../local/env';

/**
 * Where the load test arranges and checks its rows: the stack's PostgreSQL
 * with pg when DATABASE_URL is given, else the stack's Data API endpoint (the
 * embedded database is one process's: only the running stack may open it)
 * with the production client, lib/platform/db. SQL uses $1, $2 ... either way.
 */
export interface Sql {
  kind: 'postgres' | 'embedded';
  description: string;
  query(sql: string, params?: (number | string)[]): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

export async function openSql(): Promise<Sql> {
  const databaseUrl = process.env.DATABASE_URL;
  if (databaseUrl) {
    const { Client } = await import('pg');
    const client = new Client({ connectionString: databaseUrl });
    await client.connect();
    const url = new URL(databaseUrl);
    return {
      kind: 'postgres',
      description: `PostgreSQL ${url.hostname}:${url.port || 5432}${url.pathname}`,
      query: async (text, params = []) => (await client.query(text, params)).rows,
      close: () => client.end(),
    };
  }
  const settings = localSettings();
  const endpoint = settings.dataApiEndpoint ?? `http://127.0.0.1:${settings.dataApiPort}`;
  // The same environment npm start gives the functions, so lib/platform/db finds the endpoint.
  useLocalStackEnv(settings, endpoint);
  const { db } = await import('../lib/platform/db');
  const database = db();
  const query = async (text: string, params: (number | string)[] = []) => {
    const named = text.replace(/\$(\d+)/g, (_, n: string) => `:p${n}`);
    const values = Object.fromEntries(params.map((value, i) => [`p${i + 1}`, value]));
    return (await database.query(named, values)).rows as Record<string, unknown>[];
  };
  try {
    await query('SELECT 1 AS one');
  } catch (error) {
    throw new Error(`No Data API endpoint answers at ${endpoint} (${(error as Error).message}). Start the stack (npm start), or set DATA_API_PORT / DATABASE_URL.`);
  }
  return { kind: 'embedded', description: `Data API ${endpoint}`, query, close: async () => {} };
}
