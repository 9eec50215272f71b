import { Client } from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DataApiServer } from '../../local/data-api/server';
import { bodyOf } from '../support/events';
import { startClusterDataApi, startPgCluster, type PgCluster } from '../support/pg-cluster';
import { callBalance, callCharge, callPay, expectProblem, insertItem, insertUser, pointsState } from '../support/points';
import { useTimedFigures } from './db-harness';

/**
 * PostgreSQL stopped and started under the API (a cluster this file owns,
 * never the machine's): while it is down every request is a fast 503 that
 * changed nothing; once it is back the API serves normally within about 2 s,
 * with no restart of anything, and balances and stock are exactly what the
 * 2xx answers say.
 */

const SLACK_MS = 700;

let cluster: PgCluster;
let dataApi: DataApiServer;
let pg: Client;

beforeAll(async () => {
  cluster = await startPgCluster();
  dataApi = await startClusterDataApi(cluster);
  // Before the handlers and lib/platform/db read the configuration.
  process.env.DATA_API_ENDPOINT = dataApi.url;
  process.env.DATABASE_URL = cluster.url();
  const admin = new Client({ connectionString: cluster.url() });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${process.env.DB_NAME}"`);
  await admin.end();
  const { migrate } = await import('../../db/migrate');
  const { db } = await import('../../lib/platform/db');
  await migrate(db());
  pg = await connect();
}, 60_000);

afterAll(async () => {
  await pg?.end().catch(() => {});
  await dataApi?.close();
  await cluster?.destroy();
  const { closeRedis } = await import('../../lib/platform/redis/client');
  await closeRedis();
});

async function connect(): Promise<Client> {
  const client = new Client({ connectionString: cluster.url(process.env.DB_NAME) });
  client.on('error', () => {}); // cut by the stop; a new one is made after
  await client.connect();
  return client;
}

const timed = useTimedFigures();

it('is 503 fast while PostgreSQL is down, changes nothing, and serves normally within about 2 s of its start', async () => {
  const userId = 1;
  const itemId = 2;
  await insertUser(pg, userId, 1000);
  await insertItem(pg, itemId, 100, 10);
  let balance = 1000;
  let stock = 10;

  const ok = await callCharge(userId, { amount: 10 });
  expect(ok.statusCode).toBe(200);
  balance += 10;

  await pg.end();
  await cluster.stop();

  for (const call of [
    () => callCharge(userId, { amount: 5 }),
    () => callPay(userId, { items: [{ itemId, quantity: 1 }] }),
    () => callBalance(userId),
    () => callCharge(userId, { amount: 5 }),
  ]) {
    const { result, ms } = await timed(call);
    expectProblem(result, 503, 'DEPENDENCY_UNAVAILABLE');
    expect(result.headers?.['retry-after']).toMatch(/^[1-9][0-9]*$/);
    expect(ms).toBeLessThan(2000 + SLACK_MS);
  }

  await cluster.start();
  const back = performance.now();
  // The first requests after the start may still meet the endpoint's pooled
  // connections that the stop cut; each such answer must be a 503 as well.
  let served: Awaited<ReturnType<typeof callCharge>> | undefined;
  while (performance.now() - back < 5000) {
    const result = await callCharge(userId, { amount: 20 });
    if (result.statusCode === 200) {
      served = result;
      break;
    }
    expectProblem(result, 503, 'DEPENDENCY_UNAVAILABLE');
    await sleep(100);
  }
  expect(served).toBeDefined();
  balance += 20;
  const recoveredMs = performance.now() - back;
  timed.note(`first charge served ${Math.round(recoveredMs)} ms after pg_ctl start returned`);
  expect(recoveredMs).toBeLessThan(2000 + SLACK_MS);
  expect(bodyOf(served!)).toMatchObject({ balance });

  // Normal speed again, for both balance changes.
  const { result: paid, ms } = await timed(() => callPay(userId, { items: [{ itemId, quantity: 2 }] }));
  expect(paid.statusCode).toBe(201);
  expect(ms).toBeLessThan(1000 + SLACK_MS);
  balance -= 200;
  stock -= 2;

  pg = await connect();
  const state = await pointsState(pg, userId, [itemId]);
  expect(state.user.balance).toBe(balance);
  expect(state.items).toEqual([{ id: itemId, stock }]);
  expect(state.history.map((row) => row.amount)).toEqual([10, 20, -200]);
  expect(state.orders).toHaveLength(1);
});
