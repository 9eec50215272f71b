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
} from './redis-harness';

/**
 * Redis killed (connections reset, its data gone) and, a few seconds later,
 * restarted empty on the same port: 503 fast while it is down, popular items
 * from the database, and normal service again within about 2 s of the
 * restart, with no restart of the function.
 */

const fault = useFaultStack();

it('is 503 fast while Redis is down and serves again soon after it restarts empty', async () => {
  const stack = fault();
  const { pg, server } = stack;
  const author = 1;
  const post = 101;
  const charger = 2;
  await insertUser(pg, author);
  await insertPost(pg, post, author);
  await insertUser(pg, charger, 1000);
  const item = 201;
  await insertItem(pg, item, 10, 100);

  expect((await stack.like(post, 1000)).status).toBe(200);
  expect((await stack.charge(charger, 1)).status).toBe(200);
  const before = await balanceOf(pg, charger);

  await server.kill();
  const downAt = performance.now();
  // While down: two rounds, one right after the kill (the client has just
  // seen its connection reset) and one a second later (reconnecting).
  const rounds = [];
  for (let round = 0; round < 2; round++) {
    const likers = Array.from({ length: 5 }, (_, i) => 2000 + round * 10 + i);
    const [likes, charges, pays, reads, health] = await Promise.all([
      Promise.all(likers.map((user) => stack.like(post, user).then((answer) => ({ user, answer })))),
      Promise.all([2, 4].map((amount) => stack.charge(charger, amount * (round + 1)).then((answer) => ({ amount: amount * (round + 1), answer })))),
      Promise.all([stack.pay(charger, [{ itemId: item, quantity: 1 }])]),
      Promise.all([stack.popular(charger)]),
      Promise.all([stack.health()]),
    ]);
    rounds.push({ likes, charges, pays, reads, health });
    console.log(
      `down, round ${round}: likes ${summary(likes.map((l) => l.answer))}; charges ${summary(charges.map((c) => c.answer))}; pays ${summary(pays)}; ` +
        `popular-items ${summary(reads)}; health ${summary(health)}`,
    );
  }
  const likes = rounds.flatMap((r) => r.likes);
  const charges = rounds.flatMap((r) => r.charges);
  const pays = rounds.flatMap((r) => r.pays);
  for (const answer of [...likes.map((l) => l.answer), ...charges.map((c) => c.answer), ...pays]) {
    expect(answer.ms).toBeLessThan(ANSWER_BOUND_MS);
    expect(isUnavailableProblem(answer)).toBe(true);
  }
  for (const read of rounds.flatMap((r) => r.reads)) {
    expect(read.ms).toBeLessThan(ANSWER_BOUND_MS);
    expect(read.status).toBe(200);
  }
  for (const probe of rounds.flatMap((r) => r.health)) {
    expect(probe.ms).toBeLessThan(ANSWER_BOUND_MS);
    expect(probe.status).toBe(503);
    expect(probe.body).toEqual({ redis: 'down', database: 'ok' });
  }
  console.log(`down for ${Math.round(performance.now() - downAt)} ms`);

  await server.restart();
  const restartedAt = performance.now();
  const served = await untilServed(() => stack.like(post, 3000));
  const charged = await untilServed(() => stack.charge(charger, 64));
  const paid = await untilServed(() => stack.pay(charger, [{ itemId: item, quantity: 1 }]));
  expect(paid.answer.ms).toBeLessThan(500);
  console.log(
    `after the restart: first like served at ${Math.round(served.afterMs)} ms (${served.tries} tries), ` +
      `next charge ${charged.answer.status} in ${Math.round(charged.answer.ms)} ms, ${Math.round(performance.now() - restartedAt)} ms after the restart`,
  );
  expect(performance.now() - restartedAt).toBeLessThan(ANSWER_BOUND_MS);
  expect(charged.answer.ms).toBeLessThan(500);
  const health = await stack.health();
  expect({ status: health.status, body: health.body }).toEqual({ status: 200, body: { redis: 'ok', database: 'ok' } });

  // Nothing answered 503 took effect: no charge, and none of those likes.
  const after = await balanceOf(pg, charger);
  expect(after.balance).toBe(before.balance + charges.filter((c) => is2xx(c.answer)).reduce((sum, c) => sum + c.amount, 0) + 64 - 10);
  expect(after.charges).toBe(before.charges + 1);
  const { rows } = await pg.query<{ stock: number; orders: number }>(
    'SELECT stock, (SELECT count(*)::int FROM orders WHERE user_id = $2) AS orders FROM items WHERE id = $1',
    [item, charger],
  );
  expect(rows[0]).toEqual({ stock: 99, orders: 1 });
  for (const { user } of likes) {
    expect({ user, likedByMe: (await stack.likeStatus(post, user)).body.likedByMe }).toEqual({ user, likedByMe: false });
  }
  expect((await stack.likeStatus(post, 3000)).body).toMatchObject({ likedByMe: true });
  // The post's count and the author's received count still agree, whatever survived the loss.
  const count = (await stack.likeStatus(post, 3000)).body.likeCount;
  expect((await stack.received(author)).body).toMatchObject({ receivedLikeCount: count });
}, 60_000);
