/**
 * npx tsx load/cluster.ts [--replicas]: a throwaway 3-master Redis Cluster on
 * free loopback ports (tests/support/redis-cluster), until Ctrl-C. Prints the
 * REDIS_URL to give `REDIS_CLUSTER=true npm start` and `npm run load`.
 */
import { startRedisCluster } from '../tests/support/redis-cluster';

async function main(): Promise<void> {
  const cluster = await startRedisCluster({ replicas: process.argv.includes('--replicas') ? 1 : 0, log: (line) => console.log(line) });
  console.log(`REDIS_CLUSTER=true REDIS_URL=${cluster.url}`);
  const stop = () => {
    void cluster.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  setInterval(() => {}, 1 << 30);
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exit(1);
});
