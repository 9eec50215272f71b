import { Client } from 'pg';
import { ANSWER_BOUND_MS, balanceOf, insertUser, is2xx, isUnavailableProblem, useFaultStack, summary } from './redis-harness';

/**
 * Redis frozen while one charge holds the user's point lock (its statement
 * waiting on a row lock another connection holds) and three more charges of
 * the same user wait for that lock. The holder commits while Redis is frozen;
 * the waiters give up. When Redis thaws it runs the holder's late release and
 * whatever the waiters sent: the user's next charge must not then wait
 * behind a lock handed to, or taken by, a request that already failed.
 */

const fault = useFaultStack();

it('leaves no lock behind for the next charge when Redis freezes under a holder and its waiters', async () => {
  const stack = fault();
  const { pg, server } = stack;
  const user = 7;
  await insertUser(pg, user, 1000);
  expect((await stack.charge(user, 1)).status).toBe(200);
  const before = await balanceOf(pg, user);

  // A second connection holds the users row, so the holder's statement waits with the lock held.
  const blocker = new Client({ connectionString: pgUrl() });
  await blocker.connect();
  try {
    await blocker.query('BEGIN');
    await blocker.query('SELECT 1 FROM users WHERE id = $1 FOR UPDATE', [user]);
    const holder = stack.charge(user, 2).then((answer) => ({ amount: 2, answer }));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const waiters = [4, 8, 16].map((amount) => stack.charge(user, amount).then((answer) => ({ amount, answer })));
    await new Promise((resolve) => setTimeout(resolve, 300));
    server.pause();
    const pausedAt = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 200));
    await blocker.query('COMMIT');
    const answers = await Promise.all([holder, ...waiters]);
    const answeredAfterPause = performance.now() - pausedAt;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 3000 - answeredAfterPause)));
    server.resume();
    console.log(
      `holder and waiters: ${answers.map((a) => `${a.amount}:${a.answer.status}/${Math.round(a.answer.ms)}ms`).join(' ')}; ` +
        `all answered ${Math.round(answeredAfterPause)} ms into the pause`,
    );
    for (const { answer } of answers) {
      // The waiters have waited since before the pause; each is answered within its bound of the pause.
      expect(is2xx(answer) || isUnavailableProblem(answer) || answer.body.code === 'LOCK_TIMEOUT').toBe(true);
    }
    expect(answeredAfterPause).toBeLessThan(ANSWER_BOUND_MS);

    // Thawed: the next charge is served at normal speed.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const next = await stack.charge(user, 32);
    console.log(`next charge after the thaw: ${next.status} in ${Math.round(next.ms)} ms; ${summary([next])}`);
    expect(next.status).toBe(200);
    expect(next.ms).toBeLessThan(500);

    const after = await balanceOf(pg, user);
    const served = answers.filter((a) => is2xx(a.answer));
    expect(after.balance).toBe(before.balance + served.reduce((sum, a) => sum + a.amount, 0) + 32);
    expect(after.charges).toBe(before.charges + served.length + 1);
  } finally {
    await blocker.end().catch(() => undefined);
  }
}, 60_000);

function pgUrl(): string {
  const url = new URL(process.env.DATABASE_URL!);
  url.pathname = `/${process.env.DB_NAME}`;
  return url.toString();
}
