import { Client } from 'pg';
import { assertRedisReachable } from '../../local/env';

/**
 * Where the integration tests find Redis and PostgreSQL: REDIS_URL and
 * DATABASE_URL when set; otherwise containers when a container runtime
 * exists; otherwise the services running on this machine.
 *
 * TEST_REDIS=cluster: Redis is a throwaway 3-master Redis Cluster of this
 * run's own (tests/support/redis-cluster), whatever REDIS_URL says, and
 * PostgreSQL is found as above.
 */

export interface Services {
  redisUrl: string;
  /** redisUrl names one node of a Redis Cluster. */
  redisCluster: boolean;
  databaseUrl: string;
  stop(): Promise<void>;
}

const defaults = { redisUrl: 'redis://127.0.0.1:6379', databaseUrl: 'postgres://postgres@127.0.0.1:5432/test' };

export async function provideServices(): Promise<Services> {
  if (process.env.TEST_REDIS === 'cluster') return provideClusterServices();
  if (process.env.TEST_REDIS && process.env.TEST_REDIS !== 'standalone') {
    throw new Error(`TEST_REDIS must be "cluster" or "standalone", not ${JSON.stringify(process.env.TEST_REDIS)}`);
  }
  if (process.env.REDIS_URL && process.env.DATABASE_URL) {
    return { redisUrl: process.env.REDIS_URL, redisCluster: false, databaseUrl: process.env.DATABASE_URL, stop: async () => {} };
  }
  const containers = await startContainers().catch((error: Error) => {
    if (process.env.TEST_DEBUG) console.warn(`no containers (${error.message}); using local services`);
    return undefined;
  });
  return (
    containers ?? {
      redisUrl: process.env.REDIS_URL ?? defaults.redisUrl,
      redisCluster: false,
      databaseUrl: process.env.DATABASE_URL ?? defaults.databaseUrl,
      stop: async () => {},
    }
  );
}

async function startContainers(): Promise<Services> {
  // Loaded lazily: with no container runtime it fails within milliseconds.
  const { GenericContainer, Wait } = await import('testcontainers');
  const [redis, postgres] = await Promise.all([
    new GenericContainer('redis:7-alpine').withExposedPorts(6379).start(),
    new GenericContainer('postgres:16-alpine')
      .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust', POSTGRES_DB: 'test' })
      .withExposedPorts(5432)
      .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
      .start(),
  ]);
  return {
    redisUrl: `redis://${redis.getHost()}:${redis.getMappedPort(6379)}`,
    redisCluster: false,
    databaseUrl: `postgres://postgres@${postgres.getHost()}:${postgres.getMappedPort(5432)}/test`,
    stop: async () => {
      await Promise.all([redis.stop(), postgres.stop()]);
    },
  };
}

/** A 3-master cluster started here (never on 6379), and PostgreSQL as usual. */
async function provideClusterServices(): Promise<Services> {
  const { startRedisCluster } = await import('./redis-cluster');
  const cluster = await startRedisCluster({ log: process.env.TEST_DEBUG ? (line) => console.warn(line) : undefined });
  return {
    redisUrl: cluster.url,
    redisCluster: true,
    databaseUrl: process.env.DATABASE_URL ?? defaults.databaseUrl,
    stop: () => cluster.stop(),
  };
}

/** Fails with a message that says what to start, instead of a timeout later. */
export async function assertReachable(redisUrl: string, databaseUrl: string): Promise<void> {
  await assertRedisReachable(redisUrl);
  const pg = new Client({ connectionString: databaseUrl, connectionTimeoutMillis: 3000 });
  try {
    await pg.connect();
    await pg.query('SELECT 1');
  } catch (error) {
    throw new Error(`PostgreSQL is not reachable at ${databaseUrl} (${(error as Error).message}). Start it or set DATABASE_URL.`);
  } finally {
    await pg.end().catch(() => {});
  }
}
