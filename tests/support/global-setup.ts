import { randomBytes } from 'node:crypto';
import { startDataApi, type DataApiServer } from '../../local/data-api/server';
import { assertReachable, provideServices, type Services } from './services';

/**
 * Once per test run: find Redis and PostgreSQL, and start one local Data API
 * endpoint in front of that PostgreSQL. TEST_REDIS=cluster: Redis is a
 * 3-master Redis Cluster of the run's own (tests/support/services). Test files reach it over HTTP with the
 * production client; each names its own database (tests/support/env.ts).
 */
export interface TestStack {
  services: Services;
  dataApi: DataApiServer;
}

declare global {
  // eslint-disable-next-line no-var
  var __TEST_STACK__: TestStack | undefined;
}

export default async function globalSetup(): Promise<void> {
  process.env.TEST_RUN_ID = randomBytes(3).toString('hex');
  const services = await provideServices();
  await assertReachable(services.redisUrl, services.databaseUrl);
  const dataApi = await startDataApi({ databaseUrl: services.databaseUrl, port: 0 });
  // Workers start after this and inherit the environment.
  process.env.REDIS_URL = services.redisUrl;
  // On a cluster every Redis client of the code under test (lib/platform/config)
  // and of the tests (tests/support/redis-nodes) is a Cluster client.
  process.env.REDIS_CLUSTER = String(services.redisCluster);
  process.env.DATABASE_URL = services.databaseUrl;
  process.env.DATA_API_ENDPOINT = dataApi.url;
  globalThis.__TEST_STACK__ = { services, dataApi };
}
