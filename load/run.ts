/**
 * npm run load: drives a running local stack (npm start) over HTTP with
 * autocannon, scenario by scenario, then checks the invariants through the
 * API and the database, and writes a report (load/report/<label>/).
 *
 *   like-storm      many users like one hot post
 *   likes-spread    likes over many posts of many authors
 *   points-hot      charges and orders of a few hot users (one lock each)
 *   popular-items   GET /items/popular in a few variants
 *   trending        orders of the hot users and GET /items/trending together
 *   all-at-once     all four together
 *
 * Bounded: each scenario runs LOAD_DURATION_S seconds or LOAD_MAX_REQUESTS
 * requests, whichever ends first; loopback only; it stops by itself.
 *
 * --chaos: all-at-once against a stack of the run's own (load/chaos.ts) while
 * Redis is paused, killed and restarted empty, and Data API replies are
 * dropped after their statement ran or delayed, at moments drawn from a
 * printed seed (LOAD_CHAOS_SEED replays them). 503 DEPENDENCY_UNAVAILABLE is
 * then an expected answer, never an error; every invariant must still hold
 * against the 2xx answers (so every 5xx changed nothing), likes lost with a
 * Redis restarted empty excepted: those acknowledged before the restart and
 * not yet synced to post_likes (README, "What is lost at worst"). Charges and
 * orders carry an Idempotency-Key; those answered 503 are sent again with it
 * after the faults, as a client would (settleUnavailable). The report
 * lists each fault and what the clients saw during it. DATABASE_URL names
 * the PostgreSQL server on which it makes (and drops) its database;
 * LOAD_DURATION_S defaults to 30.
 *
 * Variables (all optional):
 *   LOAD_BASE_URL (http://127.0.0.1:3000, or PORT's)  the stack; must be loopback
 *   LOAD_DURATION_S (10), LOAD_MAX_REQUESTS (50000), LOAD_CONNECTIONS (32)
 *   LOAD_SCENARIOS      comma-separated subset of the names above
 *   LOAD_LABEL          the report's folder name (default: a timestamp and the stack's kind)
 *   DATABASE_URL        the stack's PostgreSQL (rows are arranged and checked with pg);
 *                       unset: through the stack's Data API endpoint (DATA_API_ENDPOINT,
 *                       else http://127.0.0.1:DATA_API_PORT, 4010), e.g. the embedded database
 *   REDIS_URL, REDIS_CLUSTER, REDIS_KEY_PREFIX  as given to npm start: the Redis whose
 *                       commandstats show what each shard carried (read only)
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import calculateSlot from 'cluster-key-slot';
import Redis, { Cluster } from 'ioredis';
import { likeSetKey } from '../lib/likes/keys';
import { createLocalToken } from '../lib/platform/local-token';
import { projectRoot } from '../local/env';
import { runFaults, startChaosStack, startSyncing, type ChaosEvent, type ChaosStack, type FaultRun } from './chaos';
import { renderReport, type ScenarioReport } from './report';
import { openSql, type Sql } from './sql';

const env = process.env;
const chaos = process.argv.includes('--chaos');
let baseUrl = env.LOAD_BASE_URL ?? `http://127.0.0.1:${env.PORT || 3000}`;
const durationS = Number(env.LOAD_DURATION_S ?? (chaos ? 30 : 10));
const maxRequests = Number(env.LOAD_MAX_REQUESTS ?? 50_000);
const connections = Number(env.LOAD_CONNECTIONS ?? 32);
const keyPrefix = env.REDIS_KEY_PREFIX ?? '';
const onCluster = env.REDIS_CLUSTER === 'true' || env.REDIS_CLUSTER === '1';

// --- the data set: fresh ids per run, far above the demo data's ---
const base = 1_000_000_000_000 + (Math.floor(Date.now() / 1000) % 10_000_000) * 100_000;
const AUTHORS = Array.from({ length: 20 }, (_, i) => base + 1_000 + i);
const POSTS = Array.from({ length: 200 }, (_, i) => base + 10_000 + i);
const authorOfPost = (postId: number) => AUTHORS[(postId - base - 10_000) % AUTHORS.length]!;
const HOT_POST = POSTS[0]!;
const HOT_USERS = Array.from({ length: 5 }, (_, i) => base + 2_000 + i);
const ITEMS = Array.from({ length: 5 }, (_, i) => ({ id: base + 3_000 + i, price: 100 * (i + 1), stock: 200_000 }));
const LIKERS = 5_000;
const likerId = (i: number) => base + 50_000 + i;
const START_BALANCE = 50_000_000;
/** How long a run waits, at its end, for the answers of requests still in flight. */
const DRAIN_LIMIT_S = 12;
/** Requests with an effect still unanswered when a run stopped (their outcome is unknown). */
let unanswered = 0;

/** What the 2xx answers say the state must now be. */
const expected = {
  likers: new Map<number, Set<number>>(POSTS.map((postId) => [postId, new Set()])),
  balance: new Map<number, number>(HOT_USERS.map((userId) => [userId, START_BALANCE])),
  orders: new Map<number, { count: number; total: number }>(HOT_USERS.map((userId) => [userId, { count: 0, total: 0 }])),
  stock: new Map<number, number>(ITEMS.map((item) => [item.id, item.stock])),
};

type Sent =
  | { kind: 'like'; postId: number; userId: number }
  | { kind: 'charge'; userId: number; amount: number; queued?: boolean; key?: string }
  | { kind: 'order'; userId: number; lines: { itemId: number; quantity: number }[]; queued?: boolean; key?: string }
  | { kind: 'popular' }
  | { kind: 'trending' };

interface Mix {
  name: string;
  connections: number;
  next(): { sent: Sent; method: 'GET' | 'POST'; path: string; userId: number; body?: unknown; headers?: Record<string, string> };
}

const random = (n: number) => Math.floor(Math.random() * n);
const pick = <T>(values: readonly T[]): T => values[random(values.length)]!;
const tokenCache = new Map<number, string>();
const tokenOf = (userId: number) => tokenCache.get(userId)!;

const likeStorm = (share = 1): Mix => ({
  name: 'like-storm',
  connections: Math.max(1, Math.round(connections * share)),
  next() {
    const userId = likerId(random(LIKERS));
    return { sent: { kind: 'like', postId: HOT_POST, userId }, method: 'POST', path: `/posts/${HOT_POST}/likes`, userId };
  },
});
const likesSpread = (share = 1): Mix => ({
  name: 'likes-spread',
  connections: Math.max(1, Math.round(connections * share)),
  next() {
    const postId = pick(POSTS);
    const userId = likerId(random(LIKERS));
    return { sent: { kind: 'like', postId, userId }, method: 'POST', path: `/posts/${postId}/likes`, userId };
  },
});
const pointsHot = (share = 1): Mix => ({
  name: 'points-hot',
  connections: Math.max(1, Math.round(connections * share)),
  next() {
    const userId = pick(HOT_USERS);
    // --chaos: every one carries a key, so that its 503 can be settled as a client would (settleUnavailable).
    const key = chaos ? randomUUID() : undefined;
    const headers = key ? { 'idempotency-key': key } : undefined;
    if (Math.random() < 0.5) {
      const amount = 1 + random(1000);
      return { sent: { kind: 'charge', userId, amount, key }, method: 'POST', path: '/points/charge', userId, body: { amount }, headers };
    }
    const first = random(ITEMS.length);
    const lines = [{ itemId: ITEMS[first]!.id, quantity: 1 + random(3) }];
    if (Math.random() < 0.5) lines.push({ itemId: ITEMS[(first + 1) % ITEMS.length]!.id, quantity: 1 + random(3) });
    return { sent: { kind: 'order', userId, lines, key }, method: 'POST', path: '/orders', userId, body: { items: lines }, headers };
  },
});
/** The same charges and orders of the hot users, queued (Prefer: respond-async): their outcomes are read after the run. */
const pointsQueued = (share = 1): Mix => {
  const direct = pointsHot(share);
  return {
    name: 'points-queued',
    connections: direct.connections,
    next() {
      const next = direct.next();
      return { ...next, sent: { ...(next.sent as Extract<Sent, { kind: 'charge' | 'order' }>), queued: true }, headers: { ...next.headers, prefer: 'respond-async' } };
    },
  };
};
const popularItems = (share = 1): Mix => ({
  name: 'popular-items',
  connections: Math.max(1, Math.round(connections * share)),
  next() {
    const userId = pick(HOT_USERS);
    return { sent: { kind: 'popular' }, method: 'GET', path: `/items/popular?days=${1 + random(7)}&limit=${pick([5, 10])}`, userId };
  },
});

const trendingItems = (share = 1): Mix => ({
  name: 'trending',
  connections: Math.max(1, Math.round(connections * share)),
  next() {
    const userId = pick(HOT_USERS);
    return { sent: { kind: 'trending' }, method: 'GET', path: `/items/trending?minutes=${1 + random(10)}&limit=${pick([5, 10])}`, userId };
  },
});

const SCENARIOS: Record<string, () => Mix[]> = {
  'like-storm': () => [likeStorm()],
  'likes-spread': () => [likesSpread()],
  'points-hot': () => [pointsHot()],
  'points-queued': () => [pointsQueued()],
  'popular-items': () => [popularItems()],
  trending: () => [pointsHot(0.5), trendingItems(0.5)],
  'all-at-once': () => [likeStorm(0.25), likesSpread(0.25), pointsHot(0.25), popularItems(0.25)],
};

/** Every 2xx like, with when it was answered (Date.now()): --chaos decides which survived a Redis restarted empty. */
const likeAcks: { postId: number; userId: number; at: number }[] = [];

/** --chaos: charges and orders answered 503, with when (ms from the run's start): settled after the faults (settleUnavailable). */
const unavailablePoints: { sent: Extract<Sent, { kind: 'charge' | 'order' }>; at: number }[] = [];
let chaosStartedAt = 0;

/** Queued requests answered 202: their outcomes are applied to the expected state once they are known (settleQueued). */
const queuedAccepted: { requestId: string; sent: Sent }[] = [];

/** Applies one answer to the expected state. */
function account(sent: Sent, status: number, body: string): 'ok' | 'refused' | 'unavailable' | 'error' {
  if ((sent.kind === 'charge' || sent.kind === 'order') && sent.queued && status === 202) {
    queuedAccepted.push({ requestId: safeJson(body)?.requestId, sent });
    return 'ok';
  }
  if (chaos && status === 503 && safeJson(body)?.code === 'DEPENDENCY_UNAVAILABLE') {
    if ((sent.kind === 'charge' || sent.kind === 'order') && sent.key) unavailablePoints.push({ sent, at: Date.now() - chaosStartedAt });
    return 'unavailable';
  }
  if (status >= 500 || status === 0) return 'error';
  if (status >= 400) {
    // Legitimate refusals under contention: the lock wait ran out, or the balance or stock did.
    const code = safeJson(body)?.code;
    return status === 409 && ['LOCK_TIMEOUT', 'INSUFFICIENT_BALANCE', 'OUT_OF_STOCK'].includes(code) ? 'refused' : 'error';
  }
  if (sent.kind === 'like') {
    expected.likers.get(sent.postId)!.add(sent.userId);
    likeAcks.push({ postId: sent.postId, userId: sent.userId, at: Date.now() });
  }
  applyOutcome(sent, status, body);
  return 'ok';
}

/** A charge's or an order's success, direct or queued (then `body` is its outcome's result). */
function applyOutcome(sent: Sent, status: number, body: string): void {
  if (sent.kind === 'charge' && safeJson(body)?.charged === sent.amount) {
    expected.balance.set(sent.userId, expected.balance.get(sent.userId)! + sent.amount);
  }
  if (sent.kind === 'order' && status === 201) {
    const total = sent.lines.reduce((sum, line) => sum + line.quantity * ITEMS.find((item) => item.id === line.itemId)!.price, 0);
    expected.balance.set(sent.userId, expected.balance.get(sent.userId)! - total);
    const orders = expected.orders.get(sent.userId)!;
    orders.count += 1;
    orders.total += total;
    for (const line of sent.lines) expected.stock.set(line.itemId, expected.stock.get(line.itemId)! - line.quantity);
  }
}

/**
 * Waits (up to a minute) until every queued request answered 202 has its
 * outcome in point_requests, applies the outcomes to the expected state,
 * and prints how long they took from 202 to applied.
 */
async function settleQueued(sql: Sql): Promise<void> {
  if (queuedAccepted.length === 0) return;
  const ids = [...new Set(queuedAccepted.map((queued) => queued.requestId))];
  const until = Date.now() + 60_000;
  let rows: Record<string, unknown>[] = [];
  for (;;) {
    rows = await sql.query(
      `SELECT request_id AS id, status_code::text AS s, result::text AS r,
         round(extract(epoch FROM applied_at - accepted_at) * 1000)::text AS ms
       FROM point_requests WHERE request_id = ANY(string_to_array($1, ','))`,
      [ids.join(',')],
    );
    if (rows.length >= ids.length || Date.now() > until) break;
    await sleep(200);
  }
  const outcomes = new Map(rows.map((row) => [String(row.id), { status: Number(row.s), result: String(row.r) }]));
  for (const { requestId, sent } of queuedAccepted) {
    const outcome = outcomes.get(requestId);
    if (outcome) applyOutcome(sent, outcome.status, outcome.result);
  }
  const ms = rows.map((row) => Number(row.ms)).sort((a, b) => a - b);
  const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] ?? 0;
  console.log(
    `queued: ${ids.length} accepted, ${rows.length} applied or rejected (${rows.filter((row) => Number(row.s) < 300).length} DONE); ` +
      `202 to applied p50 ${at(0.5)} ms, p95 ${at(0.95)} ms, max ${at(1)} ms`,
  );
  if (rows.length < ids.length) unanswered += ids.length - rows.length;
}

/**
 * --chaos: a 503 is the truth but in one documented case
 * (docs/decisions/006-lost-reply-resolution.md): the Data API held back a
 * balance statement's reply, and its resolution's, past DB_RESOLVE_BUDGET_MS,
 * after the statement had committed. The remedy is the Idempotency-Key every
 * point request of the run carries: as a client would, each charge or order
 * answered 503 is sent again with its key once the faults are over. A replay (Idempotent-Replayed)
 * is a 503 that hid a commit: its effect is counted, and it must have been
 * answered during a Data API fault or within 3 s after; any other answer is
 * accounted as usual.
 */
async function settleUnavailable(faults: ChaosEvent[]): Promise<{ what: string; expected: unknown; actual: unknown }> {
  const dataApiFaults = faults.filter((fault) => fault.what.startsWith('Data API'));
  // A marker that could not be taken back while Redis was away answers 409 IDEMPOTENCY_IN_PROGRESS until it expires.
  const stillOpen = (answer: { status: number; text: string }) => answer.status === 503 || safeJson(answer.text)?.code === 'IDEMPOTENCY_IN_PROGRESS';
  const unsettled: string[] = [];
  let hidden = 0;
  for (const { sent, at } of unavailablePoints) {
    const [path, body] = sent.kind === 'charge' ? ['/points/charge', { amount: sent.amount }] : ['/orders', { items: sent.lines }];
    const headers = { authorization: `Bearer ${tokenOf(sent.userId)}`, 'content-type': 'application/json', 'idempotency-key': sent.key! };
    let answer: { status: number; text: string; replayed: boolean } = { status: 0, text: '', replayed: false };
    for (const until = Date.now() + 30_000; Date.now() < until; await sleep(300)) {
      const response = await fetch(`${baseUrl}${path}`, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
      answer = { status: response.status, text: await response.text(), replayed: response.headers.get('idempotent-replayed') === 'true' };
      if (!stillOpen(answer)) break;
    }
    if (stillOpen(answer)) {
      unsettled.push(`answered ${answer.status} again 30 s after its 503 at ${at} ms`);
      continue;
    }
    if (answer.replayed && answer.status < 300) {
      hidden += 1;
      if (!dataApiFaults.some((fault) => at >= fault.at && at <= fault.until + 3000)) unsettled.push(`its 503 at ${at} ms hid a commit, away from any Data API fault`);
    }
    if (account(sent, answer.status, answer.text) === 'error') unsettled.push(`answered ${answer.status} when sent again: ${answer.text}`);
  }
  console.log(`chaos: ${unavailablePoints.length} charges and orders answered 503 were sent again with their key; ${hidden} of them had committed (replayed)`);
  return { what: 'charges and orders answered 503, sent again with their key (a commit a 503 hid only during a Data API fault)', expected: [], actual: unsettled };
}

function safeJson(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

interface Sample {
  at: number;
  ms: number;
  status: number;
}

/** One autocannon instance per mix, all at once; bounded by time and by count. `onStart` gets the scenario's start (Date.now()). */
async function runScenario(name: string, mixes: Mix[], redis: RedisStats | undefined, onStart?: (started: number) => void): Promise<ScenarioReport> {
  const before = await redis?.snapshot();
  const started = Date.now();
  onStart?.(started);
  const perMix = await Promise.all(
    mixes.map(async (mix) => {
      const samples: Sample[] = [];
      const outcome = { ok: 0, refused: 0, unavailable: 0, error: 0 };
      const statuses: Record<string, number> = {};
      const budget = Math.max(1, Math.floor(maxRequests / mixes.length));
      // Ending a run must not cut requests off mid-flight (their effect would be
      // unknown): past the time or the count, connections only ask GET /health,
      // and the run stops once every request with an effect has its answer.
      let draining = false;
      let inflight = 0;
      // Without a callback autocannon returns its instance, which is also a promise of the result.
      const instance = autocannon({
        url: baseUrl,
        connections: mix.connections,
        duration: durationS + DRAIN_LIMIT_S + 5, // a backstop: the run stops itself
        timeout: 10,
        requests: [
          {
            setupRequest: (request, context: any) => {
              if (draining) {
                context.sent = undefined;
                return { ...request, method: 'GET', path: '/health', headers: {}, body: undefined };
              }
              const next = mix.next();
              context.sent = next.sent;
              context.sentAt = Date.now(); // autocannon writes it right after this returns
              inflight += 1;
              return {
                ...request,
                method: next.method,
                path: next.path,
                headers: {
                  authorization: `Bearer ${tokenOf(next.userId)}`,
                  ...(next.body ? { 'content-type': 'application/json' } : {}),
                  ...next.headers,
                },
                body: next.body ? JSON.stringify(next.body) : undefined,
              };
            },
            onResponse: (status, body, context: any) => {
              if (!context.sent) return;
              inflight -= 1;
              outcome[account(context.sent as Sent, status, body)] += 1;
              statuses[status] = (statuses[status] ?? 0) + 1;
              samples.push({ at: Date.now() - started, ms: Date.now() - context.sentAt, status });
              if (samples.length >= budget) draining = true;
            },
          },
        ],
      }) as unknown as autocannon.Instance & PromiseLike<autocannon.Result>;
      const timer = setTimeout(() => (draining = true), durationS * 1000);
      const drainedAt = (async () => {
        while (!draining) await sleep(50);
        const limit = Date.now() + DRAIN_LIMIT_S * 1000;
        while (inflight > 0 && Date.now() < limit) await sleep(20);
        unanswered += inflight;
        instance.stop();
      })();
      const result = await instance;
      clearTimeout(timer);
      await drainedAt;
      outcome.error += result.errors + result.timeouts;
      if (result.errors + result.timeouts > 0) statuses['no answer'] = result.errors + result.timeouts;
      return { mix, samples, outcome, statuses, result };
    }),
  );
  const elapsedS = (Date.now() - started) / 1000;
  const after = await redis?.snapshot();
  return {
    name,
    elapsedS,
    parts: perMix.map(({ mix, samples, outcome, statuses }) => ({
      name: mix.name,
      connections: mix.connections,
      requests: samples.length,
      rps: samples.length / elapsedS,
      latencies: samples,
      outcome,
      statuses,
    })),
    shards: before && after && redis ? redis.delta(before, after, elapsedS) : undefined,
  };
}

// --- Redis: commandstats per master, read only (never RESETSTAT: the Redis may be shared) ---
interface NodeCounters {
  /** INFO stats total_commands_processed: commands executed, those inside scripts included. */
  commands: number;
  /** EVALSHA and EVAL calls: one per like, lock step, cache step ... */
  scripts: number;
  /** INFO cpu used_cpu_user + used_cpu_sys, in seconds: what the shard's one thread spent. */
  cpu: number;
}

export interface ShardLoad {
  node: string;
  commandsPerSecond: number;
  scriptsPerSecond: number;
  /** Share of one core the node's main thread used. */
  cpuShare: number;
  /** This node's share of all commands. */
  share: number;
}

interface RedisStats {
  snapshot(): Promise<Map<string, NodeCounters>>;
  delta(before: Map<string, NodeCounters>, after: Map<string, NodeCounters>, seconds: number): ShardLoad[];
  slotOwner(key: string): Promise<string>;
  close(): void;
}

async function openRedisStats(): Promise<RedisStats | undefined> {
  const url = env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const parsed = new URL(url);
  const client = onCluster
    ? new Cluster([{ host: parsed.hostname, port: Number(parsed.port || 6379) }], { redisOptions: { connectTimeout: 2000 } })
    : new Redis(url, { connectTimeout: 2000, maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  try {
    await client.ping();
  } catch {
    client.disconnect();
    return undefined;
  }
  const nodes = () => (client instanceof Cluster ? client.nodes('master') : [client]);
  const name = (node: Redis) => `${node.options.host}:${node.options.port}`;
  return {
    async snapshot() {
      const counters = new Map<string, NodeCounters>();
      for (const node of nodes()) {
        // INFO's default sections leave commandstats out.
        const info = `${await node.info()}\n${await node.info('commandstats')}`;
        const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
        const calls = (command: string) => Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
        counters.set(name(node), {
          commands: field('total_commands_processed'),
          scripts: calls('evalsha') + calls('eval'),
          cpu: field('used_cpu_user') + field('used_cpu_sys'),
        });
      }
      return counters;
    },
    delta(before, after, seconds) {
      const rows = [...after].map(([node, now]) => {
        const then = before.get(node) ?? { commands: 0, scripts: 0, cpu: 0 };
        // The snapshots' own INFO calls are not load.
        return { node, commands: now.commands - then.commands - 4, scripts: now.scripts - then.scripts, cpu: now.cpu - then.cpu };
      });
      const total = rows.reduce((sum, row) => sum + row.commands, 0) || 1;
      return rows
        .map((row) => ({
          node: row.node,
          commandsPerSecond: row.commands / seconds,
          scriptsPerSecond: row.scripts / seconds,
          cpuShare: row.cpu / seconds,
          share: row.commands / total,
        }))
        .sort((a, b) => b.commandsPerSecond - a.commandsPerSecond);
    },
    async slotOwner(key) {
      if (!(client instanceof Cluster)) return name(client);
      const slot = calculateSlot(key);
      const slots = (await client.cluster('SLOTS')) as unknown as [number, number, [string, number]][];
      const range = slots.find(([from, to]) => slot >= from && slot <= to);
      return range ? `${range[2][0]}:${range[2][1]}` : '?';
    },
    close: () => client.disconnect(),
  };
}

// --- setup and checks ---
async function arrange(sql: Sql): Promise<void> {
  await sql.query(
    `INSERT INTO users (id, name, point_balance) SELECT $1::bigint + g, 'load author', 0 FROM generate_series(0, $2::int - 1) g`,
    [AUTHORS[0]!, AUTHORS.length],
  );
  await sql.query(
    `INSERT INTO users (id, name, point_balance) SELECT $1::bigint + g, 'load buyer', $3::bigint FROM generate_series(0, $2::int - 1) g`,
    [HOT_USERS[0]!, HOT_USERS.length, START_BALANCE],
  );
  await sql.query(
    `INSERT INTO posts (id, author_id, title) SELECT $1::bigint + g, $3::bigint + (g % $4::int), 'load post' FROM generate_series(0, $2::int - 1) g`,
    [POSTS[0]!, POSTS.length, AUTHORS[0]!, AUTHORS.length],
  );
  await sql.query(
    `INSERT INTO items (id, name, price, stock) SELECT $1::bigint + g, 'load item ' || g, 100 * (g + 1), $3::int FROM generate_series(0, $2::int - 1) g`,
    [ITEMS[0]!.id, ITEMS.length, ITEMS[0]!.stock],
  );
}

interface Check {
  what: string;
  expected: unknown;
  actual: unknown;
}

async function checkInvariants(sql: Sql): Promise<Check[]> {
  const checks: Check[] = [];
  const token = tokenOf(HOT_USERS[0]!);
  const get = async (path: string, as = token) => {
    const response = await fetch(baseUrl + path, { headers: { authorization: `Bearer ${as}` } });
    return { status: response.status, body: (await response.json()) as any };
  };
  // Likes: every post's count is the number of distinct users answered 200; every author's received count is their posts' sum.
  const wrongPosts: string[] = [];
  for (const postId of POSTS) {
    const { body } = await get(`/posts/${postId}/likes`);
    const want = expected.likers.get(postId)!.size;
    if (body.likeCount !== want) wrongPosts.push(`${postId}: ${body.likeCount} != ${want}`);
  }
  checks.push({ what: `like counts of ${POSTS.length} posts (hot post: ${expected.likers.get(HOT_POST)!.size} likes)`, expected: [], actual: wrongPosts });
  const wrongAuthors: string[] = [];
  for (const authorId of AUTHORS) {
    const { body } = await get(`/users/${authorId}/received-likes`);
    const want = POSTS.filter((postId) => authorOfPost(postId) === authorId).reduce((sum, postId) => sum + expected.likers.get(postId)!.size, 0);
    if (body.receivedLikeCount !== want) wrongAuthors.push(`${authorId}: ${body.receivedLikeCount} != ${want}`);
  }
  checks.push({ what: `received-like counts of ${AUTHORS.length} authors`, expected: [], actual: wrongAuthors });
  // Points: balances through the API and in the database; orders and stock in the database.
  const apiBalances = [];
  for (const userId of HOT_USERS) apiBalances.push((await get('/points', tokenOf(userId))).body.balance);
  checks.push({ what: 'balances of the hot users (GET /points)', expected: HOT_USERS.map((userId) => expected.balance.get(userId)), actual: apiBalances });
  const dbBalances = await sql.query(`SELECT point_balance::text AS b FROM users WHERE id >= $1::bigint AND id < $1::bigint + $2::int ORDER BY id`, [HOT_USERS[0]!, HOT_USERS.length]);
  checks.push({ what: 'balances of the hot users (users.point_balance)', expected: HOT_USERS.map((userId) => expected.balance.get(userId)), actual: dbBalances.map((row) => Number(row.b)) });
  const orders = await sql.query(
    `SELECT user_id::text AS u, count(*)::text AS n, sum(total_amount)::text AS t FROM orders
     WHERE user_id >= $1::bigint AND user_id < $1::bigint + $2::int AND status = 'PAID' GROUP BY user_id ORDER BY user_id`,
    [HOT_USERS[0]!, HOT_USERS.length],
  );
  checks.push({
    what: 'PAID orders and their totals per hot user',
    expected: HOT_USERS.filter((userId) => expected.orders.get(userId)!.count > 0).map((userId) => `${userId}: ${expected.orders.get(userId)!.count} / ${expected.orders.get(userId)!.total}`),
    actual: orders.map((row) => `${row.u}: ${row.n} / ${row.t}`),
  });
  const stock = await sql.query(`SELECT stock::text AS s FROM items WHERE id >= $1::bigint AND id < $1::bigint + $2::int ORDER BY id`, [ITEMS[0]!.id, ITEMS.length]);
  checks.push({ what: 'stock of the items', expected: ITEMS.map((item) => expected.stock.get(item.id)), actual: stock.map((row) => Number(row.s)) });
  const sold = await sql.query(
    `SELECT oi.item_id::text AS i, sum(oi.quantity)::text AS q FROM order_items oi JOIN orders o ON o.id = oi.order_id
     WHERE o.user_id >= $1::bigint AND o.user_id < $1::bigint + $2::int GROUP BY oi.item_id ORDER BY oi.item_id`,
    [HOT_USERS[0]!, HOT_USERS.length],
  );
  checks.push({
    what: 'order lines per item (order_items) against the stock taken',
    expected: ITEMS.filter((item) => expected.stock.get(item.id)! < item.stock).map((item) => `${item.id}: ${item.stock - expected.stock.get(item.id)!}`),
    actual: sold.map((row) => `${row.i}: ${row.q}`),
  });
  checks.push(await checkTrending(sql, get));
  return checks;
}

/**
 * The last hour's trending ranking through the API against the same ranking
 * computed from orders (every order of the window, not only this run's),
 * once the last answer is older than the contract's 2 s of freshness.
 */
async function checkTrending(sql: Sql, get: (path: string) => Promise<{ status: number; body: any }>): Promise<Check> {
  await sleep(2000);
  const { body } = await get('/items/trending?minutes=60&limit=50');
  const minute = Math.floor(Date.parse(body.asOf) / 60_000);
  const rows = await sql.query(
    `SELECT oi.item_id::text AS i, sum(oi.quantity)::text AS q
     FROM orders o JOIN order_items oi ON oi.order_id = o.id JOIN items ON items.id = oi.item_id
     WHERE o.status = 'PAID' AND o.created_at >= to_timestamp($1::bigint * 60) AND o.created_at < to_timestamp(($1::bigint + 61) * 60)
     GROUP BY oi.item_id HAVING sum(oi.quantity) > 0 ORDER BY sum(oi.quantity) DESC, oi.item_id LIMIT 50`,
    [minute - 60],
  );
  return {
    what: `trending over the last hour (GET /items/trending?minutes=60) against the orders (${body.items?.length ?? 0} items)`,
    expected: rows.map((row) => `${row.i}: ${row.q}`),
    actual: (body.items ?? []).map((item: { itemId: number; soldQuantity: number }) => `${item.itemId}: ${item.soldQuantity}`),
  };
}

async function main(): Promise<number> {
  const names = (env.LOAD_SCENARIOS ?? (chaos ? 'all-at-once' : Object.keys(SCENARIOS).join(','))).split(',').map((name) => name.trim());
  for (const name of names) if (!SCENARIOS[name]) throw new Error(`unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(', ')}`);
  let chaosStack: ChaosStack | undefined;
  const seed = Number(env.LOAD_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
  if (chaos) {
    console.log(`chaos: seed ${seed} (replay the faults: LOAD_CHAOS_SEED=${seed} npm run load -- --chaos); starting a stack of its own ...`);
    chaosStack = await startChaosStack(env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
    baseUrl = chaosStack.baseUrl;
    env.DATABASE_URL = chaosStack.databaseUrl;
  }
  try {
    return await measure(names, chaosStack, seed);
  } finally {
    await chaosStack?.stop();
  }
}

async function measure(names: string[], chaosStack: ChaosStack | undefined, seed: number): Promise<number> {
  const host = new URL(baseUrl).hostname;
  if (!['127.0.0.1', 'localhost', '[::1]', '::1'].includes(host)) throw new Error(`LOAD_BASE_URL must be a loopback address, not ${host}`);
  const health = await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(5000) }).catch((error: Error) => error);
  if (health instanceof Error || health.status !== 200) {
    throw new Error(`No healthy stack at ${baseUrl} (${health instanceof Error ? health.message : health.status}). Start it first: npm start`);
  }

  const sql = await openSql();
  // Not while the run kills its Redis: INFO would fail with it.
  const redis = chaosStack ? undefined : await openRedisStats();
  const faultRuns: FaultRun[] = [];
  const syncing = chaosStack ? await startSyncing(chaosStack) : undefined;
  try {
    console.log(`load: ${baseUrl}, database ${sql.description}, Redis ${onCluster ? 'Cluster' : 'standalone'}${redis ? '' : ' (no stats)'}; ids from ${base}`);
    await arrange(sql);
    for (const userId of [...HOT_USERS, ...Array.from({ length: LIKERS }, (_, i) => likerId(i))]) tokenCache.set(userId, await createLocalToken(userId));

    const reports: ScenarioReport[] = [];
    for (const name of names) {
      process.stdout.write(`${name}: running ${durationS} s or ${maxRequests} requests ...`);
      const report = await runScenario(name, SCENARIOS[name]!(), redis, (started) => {
        if (!chaosStack) return;
        chaosStartedAt = started;
        faultRuns.push(runFaults(chaosStack, seed + faultRuns.length, started, durationS * 1000));
      });
      await faultRuns.at(-1)?.done;
      reports.push(report);
      process.stdout.write('\r');
      printScenario(report);
    }
    if (syncing) console.log(`chaos: sync-likes runs during the run: ${JSON.stringify(await syncing.stop())}`);
    if (chaosStack) await forgetLikesLostWithRedis(sql, faultRuns);
    const faults = faultRuns.flatMap((run, i) => run.events.map((event) => ({ ...event, ...seenDuring(reports[i]!, event) })));
    for (const fault of faults) console.log(`fault at ${(fault.at / 1000).toFixed(1)} s to ${(fault.until / 1000).toFixed(1)} s: ${fault.what}; answers meanwhile ${fault.seen}`);
    await settleQueued(sql);
    const settled = chaosStack ? [await settleUnavailable(faults)] : [];
    const checks = [...settled, ...(await checkInvariants(sql))];
    const failed = checks.filter((check) => JSON.stringify(check.expected) !== JSON.stringify(check.actual));
    for (const check of checks) console.log(`${failed.includes(check) ? 'FAIL' : 'ok  '} ${check.what}${failed.includes(check) ? `: expected ${JSON.stringify(check.expected)}, got ${JSON.stringify(check.actual)}` : ''}`);

    const hotKeys = redis
      ? {
          hotPost: await redis.slotOwner(keyPrefix + likeSetKey(authorOfPost(HOT_POST), HOT_POST)),
          popular: await redis.slotOwner(`${keyPrefix}cache:{popular-items}:x`),
        }
      : undefined;
    const label = env.LOAD_LABEL ?? `${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}-${sql.kind}-${onCluster ? 'cluster' : 'standalone'}`;
    const dir = join(projectRoot, 'load', 'report', label);
    mkdirSync(dir, { recursive: true });
    const files = renderReport({
      title: `Load test, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
      setup: `${baseUrl}; database: ${sql.description}; Redis: ${onCluster ? 'Cluster (3 masters)' : 'standalone'}; ${durationS} s or ${maxRequests} requests per scenario, ${connections} connections`,
      reports,
      checks: checks.map((check) => ({ what: check.what, ok: !failed.includes(check), detail: failed.includes(check) ? `expected ${JSON.stringify(check.expected)}, got ${JSON.stringify(check.actual)}` : '' })),
      hotKeys,
      ...(chaosStack ? { faults: { seed, events: faults } } : {}),
    });
    for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
    console.log(`report: ${join('load', 'report', label, 'report.md')} (and report.html)`);
    if (unanswered > 0) console.log(`${unanswered} requests with an effect were still unanswered after ${DRAIN_LIMIT_S} s: the invariants may be off by them`);
    const errors = reports.flatMap((report) => report.parts).reduce((sum, part) => sum + part.outcome.error, 0);
    return failed.length > 0 || errors > 0 ? 1 : 0;
  } finally {
    await syncing?.stop();
    await sql.close();
    redis?.close();
  }
}

/**
 * --chaos: a like answered before Redis last came back empty survived only
 * if sync-likes had written it to post_likes by then (README, "What is lost
 * at worst"); the others leave the expected state. Everything else the
 * invariants check lives in PostgreSQL and is checked exactly.
 */
async function forgetLikesLostWithRedis(sql: Sql, runs: FaultRun[]): Promise<void> {
  const restartedAt = Math.max(-1, ...runs.map((run) => run.lastRestartAt()));
  if (restartedAt < 0) return;
  const rows = await sql.query(
    'SELECT post_id::text AS p, user_id::text AS u FROM post_likes WHERE post_id >= $1::bigint AND post_id < $1::bigint + $2::int',
    [POSTS[0]!, POSTS.length],
  );
  const synced = new Set(rows.map((row) => `${row.p}:${row.u}`));
  const before = [...expected.likers.values()].reduce((sum, likers) => sum + likers.size, 0);
  for (const likers of expected.likers.values()) likers.clear();
  for (const ack of likeAcks) {
    if (ack.at > restartedAt || synced.has(`${ack.postId}:${ack.userId}`)) expected.likers.get(ack.postId)!.add(ack.userId);
  }
  const after = [...expected.likers.values()].reduce((sum, likers) => sum + likers.size, 0);
  console.log(`chaos: ${before - after} of ${before} acknowledged likes were not yet in post_likes when Redis last restarted empty; the like checks leave them out`);
}

/** What the clients were answered from a fault's start until a second after its end. */
function seenDuring(report: ScenarioReport, event: ChaosEvent): { seen: string } {
  const counts: Record<string, number> = {};
  for (const part of report.parts) {
    for (const sample of part.latencies) {
      if (sample.at < event.at || sample.at > event.until + 1000) continue;
      const status = String(sample.status ?? '?');
      counts[status] = (counts[status] ?? 0) + 1;
    }
  }
  const seen = Object.entries(counts).map(([status, n]) => `${status}: ${n}`).join(', ');
  return { seen: seen || 'none' };
}

function printScenario(report: ScenarioReport): void {
  for (const part of report.parts) {
    const ms = part.latencies.map((sample) => sample.ms).sort((a, b) => a - b);
    const p = (q: number) => (ms.length ? ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]!.toFixed(0) : '-');
    const label = report.parts.length > 1 ? `${report.name}/${part.name}` : part.name;
    console.log(
      `${label.padEnd(28)} ${part.rps.toFixed(0).padStart(6)} rps  p50 ${p(0.5).padStart(4)} ms  p95 ${p(0.95).padStart(4)} ms  p99 ${p(0.99).padStart(4)} ms  ` +
        `errors ${part.outcome.error}  refused ${part.outcome.refused}${chaos ? `  unavailable ${part.outcome.unavailable ?? 0}` : ''}  (${Object.entries(part.statuses).map(([status, n]) => `${status}: ${n}`).join(', ')})`,
    );
  }
  if (report.shards) {
    const shards = report.shards.map(
      (shard) => `${shard.node} ${shard.commandsPerSecond.toFixed(0)} cmd/s (${(shard.share * 100).toFixed(0)}%), ${(shard.cpuShare * 100).toFixed(0)}% CPU`,
    );
    console.log(`${''.padEnd(28)} Redis: ${shards.join('; ')}`);
  }
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    console.error(error.message);
    process.exit(1);
  },
);
