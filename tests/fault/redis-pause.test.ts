import Redis from 'ioredis';
import {
  ANSWER_BOUND_MS,
  balanceOf,
  insertItem,
  insertPost,
  insertUser,
  is2xx,
  isUnavailableProblem,
  useFaultStack,
  summary,
  untilServed,
  type Timed,
} from './redis-harness';

/**
 * Redis frozen (SIGSTOP) for about 3 s while likes, charges, a payment,
 * popular-items reads and health probes are in flight, then thawed. A frozen
 * Redis keeps its connections open and takes every byte sent to it, then runs
 * all of it on SIGCONT: exactly the case where a request the client gave up
 * on could still take effect later (docs/api.md, "When a dependency fails").
 */

const PAUSE_MS = 3000;
const fault = useFaultStack();

it('answers everything fast while Redis is frozen, and nothing refused takes effect after it thaws', async () => {
  const stack = fault();
  const { pg, server } = stack;
  const author = 1;
  const [postA, postB] = [101, 102];
  const charger = 2;
  const payer = 3;
  const item = 201;
  await insertUser(pg, author);
  await insertPost(pg, postA, author);
  await insertPost(pg, postB, author);
  await insertUser(pg, charger, 1000);
  await insertUser(pg, payer, 10_000);
  await insertItem(pg, item, 10, 100);

  // Warm: post authors cached, scripts loaded, one like and one charge each.
  expect((await stack.like(postA, 1000)).status).toBe(200);
  expect((await stack.like(postB, 1001)).status).toBe(200);
  expect((await stack.charge(charger, 1)).status).toBe(200);
  expect((await stack.pay(payer, [{ itemId: item, quantity: 1 }])).status).toBe(201);
  expect((await stack.popular(payer)).status).toBe(200);
  expect((await stack.health()).status).toBe(200);
  const before = { charger: await balanceOf(pg, charger), payer: await balanceOf(pg, payer) };

  // Amounts are powers of two: the balance afterwards tells which charges took effect.
  const amounts = [2, 4, 8, 16, 32];
  const likers = Array.from({ length: 20 }, (_, i) => 2000 + i);
  const fire = (wave: number) => {
    const half = likers.filter((_, i) => i % 2 === wave);
    return {
      likes: half.map((user, i) => stack.like(i % 2 ? postA : postB, user).then((answer) => ({ user, post: i % 2 ? postA : postB, answer }))),
      // Some with an Idempotency-Key: its running marker is a Redis write too.
      charges: amounts
        .filter((_, i) => i % 2 === wave || (wave === 0 && i === 4))
        .map((amount) => stack.charge(charger, amount, amount % 8 === 0 ? `pause-${amount}` : undefined).then((answer) => ({ amount, answer }))),
      pays: [stack.pay(payer, [{ itemId: item, quantity: 1 }])],
      reads: [stack.popular(payer), stack.popular(charger)],
      health: [stack.health()],
    };
  };

  const pausedAt = performance.now();
  server.pause();
  // Wave 0 reaches Redis while its connection still looks fine; wave 1 comes
  // while the client has given up on that connection and is reconnecting.
  const wave0 = fire(0);
  await new Promise((resolve) => setTimeout(resolve, 1300));
  const wave1 = fire(1);
  const waves = [wave0, wave1];
  const likes = await Promise.all(waves.flatMap((w) => w.likes));
  const charges = await Promise.all(waves.flatMap((w) => w.charges));
  const pays = await Promise.all(waves.flatMap((w) => w.pays));
  const reads = await Promise.all(waves.flatMap((w) => w.reads));
  const health = await Promise.all(waves.flatMap((w) => w.health));
  const answeredWithinPause = performance.now() - pausedAt;
  const remaining = PAUSE_MS - answeredWithinPause;
  // Frozen for PAUSE_MS, or until the last answer if that came later.
  if (remaining > 0) await new Promise((resolve) => setTimeout(resolve, remaining));
  server.resume();
  const resumedAt = performance.now();

  const writes: Timed[] = [...likes.map((l) => l.answer), ...charges.map((c) => c.answer), ...pays];
  console.log(
    [
      `redis paused ${Math.round(resumedAt - pausedAt)} ms; all answered ${Math.round(answeredWithinPause)} ms after the pause began`,
      `likes: ${summary(likes.map((l) => l.answer))}`,
      `charges: ${summary(charges.map((c) => c.answer))}`,
      `pays: ${summary(pays)}`,
      `popular-items: ${summary(reads)}`,
      `health: ${summary(health)} ${JSON.stringify(health.map((h) => h.body))}`,
    ].join('\n'),
  );
  for (const answer of [...writes, ...reads, ...health]) expect(answer.ms).toBeLessThan(ANSWER_BOUND_MS);
  for (const answer of writes) expect(is2xx(answer) || isUnavailableProblem(answer)).toBe(true);
  // Frozen from before their first command: none can have been served.
  expect(writes.filter(is2xx)).toEqual([]);
  // Popular items come from the database while Redis does not answer.
  for (const read of reads) {
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ days: 3, limit: 5, items: expect.any(Array) });
  }
  for (const probe of health) {
    expect(probe.status).toBe(503);
    expect(probe.body).toEqual({ redis: 'down', database: 'ok' });
  }

  // Thawed: Redis now runs everything that reached it during the pause. The
  // API serves again within about 2 s, with no restart.
  const served = await untilServed(() => stack.like(postA, 3000));
  console.log(`first like served ${Math.round(served.afterMs)} ms after the resume (${served.tries} tries)`);
  expect(performance.now() - resumedAt).toBeLessThan(ANSWER_BOUND_MS);

  // What the refused charges left in Redis: no lock, no running marker.
  const inspect = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await inspect.connect();
    const { pointLockKey } = await import('../../lib/points/keys');
    const lockKey = `${process.env.REDIS_KEY_PREFIX}${pointLockKey(charger)}`;
    const left = (await inspect.keys(`${process.env.REDIS_KEY_PREFIX}*{u:${charger}}*`)).map((key) => key.slice(process.env.REDIS_KEY_PREFIX!.length));
    console.log(`keys of the charger after the thaw: ${left.sort().join(' ')}`);
    expect(await inspect.exists(lockKey)).toBe(0);
    expect(left.filter((key) => key.startsWith('idem:'))).toEqual([]);
  } finally {
    inspect.disconnect();
  }

  // The charger's next charge is served at normal speed: no lock left behind
  // by a refused charge (a lease would hold it for POINT_LOCK_LEASE_MS).
  const next = await stack.charge(charger, 64);
  console.log(`next charge after the resume: ${next.status} in ${Math.round(next.ms)} ms`);
  expect(next.status).toBe(200);
  expect(next.ms).toBeLessThan(500);
  // A key whose request was refused was not left "in progress" either: its retry is served fresh.
  const retried = await stack.charge(charger, 8, 'pause-8');
  expect(retried.status).toBe(200);
  expect(retried.result.headers?.['idempotent-replayed']).toBeUndefined();

  // Exactly what was answered 2xx took effect; nothing refused did.
  const servedLikes = likes.filter((l) => is2xx(l.answer));
  const after = { charger: await balanceOf(pg, charger), payer: await balanceOf(pg, payer) };
  const chargedOk = charges.filter((c) => is2xx(c.answer)).reduce((sum, c) => sum + c.amount, 0);
  expect(after.charger.balance).toBe(before.charger.balance + chargedOk + 64 + 8);
  expect(after.charger.charges).toBe(before.charger.charges + charges.filter((c) => is2xx(c.answer)).length + 2);
  expect(after.payer.balance).toBe(before.payer.balance - 10 * pays.filter(is2xx).length);
  const { rows: stock } = await pg.query<{ stock: number }>('SELECT stock FROM items WHERE id = $1', [item]);
  expect(stock[0]!.stock).toBe(99 - pays.filter(is2xx).length);

  const countA = await stack.likeStatus(postA, 1000);
  const countB = await stack.likeStatus(postB, 1001);
  const expectedA = 2 + servedLikes.filter((l) => l.post === postA).length; // the warm-up like and the one after the resume
  const expectedB = 1 + servedLikes.filter((l) => l.post === postB).length;
  expect(countA.body).toMatchObject({ likeCount: expectedA });
  expect(countB.body).toMatchObject({ likeCount: expectedB });
  expect((await stack.received(author)).body).toMatchObject({ receivedLikeCount: expectedA + expectedB });
  for (const { user, post, answer } of likes) {
    expect({ user, likedByMe: (await stack.likeStatus(post, user)).body.likedByMe }).toEqual({ user, likedByMe: is2xx(answer) });
  }

  // And straight from Redis, not through the code under test: the sets hold exactly the served likers.
  const raw = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await raw.connect();
    const { likeSetKey } = await import('../../lib/likes/keys');
    const members = await raw.smembers(`${process.env.REDIS_KEY_PREFIX}${likeSetKey(author, postA)}`);
    expect(members.sort()).toEqual(['1000', '3000', ...servedLikes.filter((l) => l.post === postA).map((l) => String(l.user))].sort());
    // Evidence that requests did reach the frozen Redis and were refused there when it thawed.
    const errors = await raw.info('errorstats');
    console.log(`redis errorstats after the thaw: ${errors.split('\r\n').filter((line) => line.startsWith('errorstat_')).join(' ') || 'none'}`);
    // At least wave 0's likes were written to the frozen server: without the deadline check they would have counted.
    expect(Number(/errorstat_EXPIRED:count=(\d+)/.exec(errors)?.[1] ?? 0)).toBeGreaterThanOrEqual(10);
  } finally {
    raw.disconnect();
  }
}, 60_000);
