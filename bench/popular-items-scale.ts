import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { migrate } from '../db/migrate';
import { addDays, businessDate } from '../lib/platform/business-time';
import { createDatabase, type Queryable } from '../lib/platform/db';
import { Deadline, withDeadline } from '../lib/platform/deadline';
import { MAX_DAYS } from '../lib/popular-items/popular-items';
import { rankFromOrders, rankFromRollup, type RankingWindow } from '../lib/popular-items/ranking';
import { recomputeDays } from '../lib/popular-items/rollup';
import { measure, report, reportLatency, section } from './harness';

/**
 * The uncached 30-day ranking at scale: the plain query over the orders
 * against the rollup, on the same data in the same run, both the service's
 * SQL sent straight to PostgreSQL (node-postgres): the SDK gives up on a
 * Data API call after 20 s of silence, which the plain query outlasts at
 * this size, and the local Data API's own hop (about a millisecond, see the
 * popular-items suite) would only blur the comparison. The data is generated inside PostgreSQL (generate_series) in a
 * database of its own, dropped afterwards. POPULAR_SCALE_ORDERS sets the
 * size (default 10M orders, about 20M lines, 100k items, over 40 days).
 *
 * Item popularity is skewed as sales are (item n is drawn with density
 * ~ n^-1/2: the top items sell a few times more than the 200th, which is a
 * mild skew; real catalogues are usually steeper, which only helps the
 * pruned ranking).
 */

const ORDERS = Number(process.env.POPULAR_SCALE_ORDERS ?? 10_000_000);
const ITEMS = 100_000;
const DAYS_OF_ORDERS = 40;
const CHUNK = 1_000_000;
/** Long statements are the point here: no request deadline applies. */
const LONG = { timeoutMs: 30 * 60_000 };

export async function run(): Promise<void> {
  section(`popular-items at scale: ${(ORDERS / 1e6).toFixed(1)}M orders, ${ITEMS / 1000}k items, uncached 30-day ranking`);
  const baseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const name = `bench_scale_${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: baseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  const pg = new Client({ connectionString: url.toString() });
  try {
    await withDeadline(new Deadline(4 * 3_600_000), async () => {
      const database = createDatabase({
        resourceArn: process.env.DB_RESOURCE_ARN!,
        secretArn: process.env.DB_SECRET_ARN!,
        database: name,
        endpoint: process.env.DATA_API_ENDPOINT,
        region: process.env.AWS_REGION ?? 'us-east-1',
        resumeBudgetMs: 5000,
        callTimeoutMs: LONG.timeoutMs,
      });
      await migrate(database);
      await pg.connect();
      await generate(pg);
      await compare(direct(pg));
    });
  } finally {
    await pg.end().catch(() => undefined);
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
  }
}

async function generate(pg: Client): Promise<void> {
  const started = performance.now();
  // Bulk load: the rollup's triggers would only forget days nobody stored yet.
  await pg.query('SET session_replication_role = replica');
  await pg.query(`INSERT INTO items (id, name, price, stock) SELECT n, 'item ' || n, 100 + n % 900, 1000 FROM generate_series(1, $1::int) AS n`, [ITEMS]);
  for (let first = 1; first <= ORDERS; first += CHUNK) {
    const last = Math.min(ORDERS, first + CHUNK - 1);
    // Orders spread evenly over the 40 days before now, a tenth not PAID;
    // 1 to 3 lines each (2 on average).
    await pg.query(
      `INSERT INTO orders (id, user_id, status, total_amount, created_at)
       SELECT g, 1 + g % 100000, CASE WHEN g % 10 = 0 THEN 'CANCELLED' ELSE 'PAID' END, 0,
              now() - (g::float8 / $3) * ($4 * interval '1 day')
       FROM generate_series($1::bigint, $2::bigint) AS g`,
      [first, last, ORDERS, DAYS_OF_ORDERS],
    );
    await pg.query(
      `INSERT INTO order_items (order_id, item_id, quantity, unit_price)
       SELECT g, 1 + floor($3 * power(random(), 2))::int, 1 + (g + line) % 3, 0
       FROM generate_series($1::bigint, $2::bigint) AS g, generate_series(1, 1 + (g % 3)::int) AS line`,
      [first, last, ITEMS],
    );
  }
  await pg.query(`SELECT setval(pg_get_serial_sequence('orders', 'id'), $1)`, [ORDERS]);
  await pg.query('RESET session_replication_role');
  await pg.query('VACUUM (ANALYZE) items');
  await pg.query('VACUUM (ANALYZE) orders');
  await pg.query('VACUUM (ANALYZE) order_items');
  const { rows } = await pg.query<{ lines: string; size: string }>(
    `SELECT (SELECT count(*) FROM order_items)::text AS lines, pg_size_pretty(pg_database_size(current_database())) AS size`,
  );
  report('data generated (inside PostgreSQL)', `${ORDERS} orders, ${rows[0]!.lines} lines, ${rows[0]!.size}, in ${seconds(performance.now() - started)}`);
}

async function compare(database: Queryable): Promise<void> {
  const timeZone = 'Asia/Seoul';
  const today = businessDate(new Date(), timeZone);
  const window = (limit: number): RankingWindow => ({ from: addDays(today, -MAX_DAYS), today, timeZone, limit });

  // The midnight job's work, once: every day of the window into the rollup.
  const started = performance.now();
  const days = await recomputeDays(database, { timeZone, from: addDays(today, -MAX_DAYS), to: today, keepFrom: addDays(today, -MAX_DAYS - 7) }, LONG);
  const jobMs = performance.now() - started;
  report('midnight job: recompute the 30-day rollup (one statement per day)', `${days} days in ${seconds(jobMs)} (${(jobMs / days).toFixed(0)} ms a day)`);

  for (const limit of [5, 50]) {
    const plainRows = await rankFromOrders(database, window(limit), LONG);
    const rollupRows = await rankFromRollup(database, window(limit), LONG);
    if (JSON.stringify(plainRows) !== JSON.stringify(rollupRows)) throw new Error(`limit ${limit}: the rollup ranks differently from the plain query`);
    let statements = 0;
    const counting: Queryable = {
      query: (sql, params, options) => {
        statements++;
        return database.query(sql, params, options);
      },
    };
    const plain = await measure(() => rankFromOrders(database, window(limit), LONG), 3, 1);
    const rollup = await measure(() => rankFromRollup(counting, window(limit), LONG), 30, 3);
    const path = statements === 33 ? 'proved from the daily tops' : `full rollup sum on ${statements - 33} of 33 runs`;
    reportLatency(`plain 30-day ranking over the orders, limit ${limit} (baseline)`, plain);
    reportLatency(`rollup 30-day ranking, limit ${limit}, same answer (${path})`, rollup);
    report('  rollup / plain', `x${(rollup.p50 / plain.p50).toFixed(4)} p50 (${(plain.p50 / rollup.p50).toFixed(0)} times faster)`);
  }
}

/** The service's statements, with the Data API's :name parameters, sent over node-postgres. */
function direct(pg: Client): Queryable {
  return {
    async query(sql, params = {}) {
      const names: string[] = [];
      const text = sql.replace(/(?<!:):([A-Za-z_][A-Za-z0-9_]*)/g, (_, param: string) => {
        if (!names.includes(param)) names.push(param);
        return `$${names.indexOf(param) + 1}`;
      });
      const result = await pg.query(text, names.map((param) => (params as Record<string, unknown>)[param]));
      return { rows: result.rows, rowCount: result.rowCount ?? result.rows.length };
    },
  };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
