import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { migrate } from '../db/migrate';
import { startDataApi } from '../local/data-api/server';
import { closeRedis } from '../lib/platform/redis/client';
import { db } from '../lib/platform/db';

/**
 * A throwaway database (behind a local Data API endpoint) and Redis key
 * prefix for one bench run, so benchmarks go through the production code
 * paths and leave nothing behind.
 */
export async function setupBenchEnvironment(): Promise<{ close(): Promise<void> }> {
  const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const name = `bench_${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: databaseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  const dataApi = await startDataApi({ databaseUrl, port: 0 });
  Object.assign(process.env, {
    STAGE: 'bench',
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'bench',
    AWS_SECRET_ACCESS_KEY: 'bench',
    DB_RESOURCE_ARN: 'arn:aws:rds:us-east-1:000000000000:cluster:bench',
    DB_SECRET_ARN: 'arn:aws:secretsmanager:us-east-1:000000000000:secret:bench',
    DB_NAME: name,
    DATA_API_ENDPOINT: dataApi.url,
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    REDIS_KEY_PREFIX: `bench:${name}:`,
    JWT_ISSUER: 'http://127.0.0.1/local-issuer',
    JWT_AUDIENCE: 'local',
  });
  await migrate(db());
  return {
    async close() {
      await closeRedis();
      await dataApi.close();
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.end();
    },
  };
}
