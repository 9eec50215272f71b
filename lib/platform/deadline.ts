import { AsyncLocalStorage } from 'node:async_hooks';
import { config } from './config';

/**
 * One deadline per request, which every wait obeys: Redis commands, the lock
 * wait, Data API calls, the resume retry, the health probe.
 *
 * A handler derives it from context.getRemainingTimeInMillis() minus a safety
 * margin (DEADLINE_SAFETY_MARGIN_MS), so the function answers 503 itself
 * before the platform would kill it. A scheduled function runs under a
 * JobDeadline of its own remaining time. Code without either (CLIs,
 * migrations, tests) gets a fresh default budget per call.
 *
 * Two clocks, each for what it is good at:
 * - waits here use the monotonic clock (performance.now), immune to steps;
 * - `epochMs` is the same instant on the wall clock, for the servers: a Redis
 *   script or a SQL statement that starts after it refuses to write, so that
 *   nothing the client gave up on takes effect later. Servers' clocks may be
 *   a little off from ours; `serverCutoffMs` subtracts CLOCK_SKEW_MARGIN_MS,
 *   and the client only gives up once its own deadline has passed, so a
 *   server whose clock is behind by less than the margin still refuses
 *   whatever arrives after the client stopped waiting.
 */
export class Deadline {
  private readonly endMono: number;
  /** The deadline on the wall clock (ms since the epoch). */
  readonly epochMs: number;

  constructor(budgetMs: number) {
    const budget = Math.max(0, budgetMs);
    this.endMono = performance.now() + budget;
    this.epochMs = Date.now() + budget;
  }

  /** Milliseconds left, on the monotonic clock; never negative. */
  remainingMs(): number {
    return Math.max(0, this.endMono - performance.now());
  }

  expired(): boolean {
    return this.remainingMs() <= 0;
  }

  /** A deadline no later than this one and at most `ms` from now. */
  within(ms: number): Deadline {
    return new Deadline(Math.min(ms, this.remainingMs()));
  }

  /** The wall-clock instant after which a server must refuse to act for this request. */
  serverCutoffMs(): number {
    return Math.floor(this.epochMs - config().deadline.clockSkewMarginMs);
  }
}

/**
 * A scheduled job's deadline: its function's remaining time, which every
 * wait obeys as a request's does. Unlike a request it owes no one an answer
 * within about 2 s, so its database calls are not cut at DB_CALL_TIMEOUT_MS
 * (lib/platform/db): a batch may take as long as the function has left.
 */
export class JobDeadline extends Deadline {}

const current = new AsyncLocalStorage<Deadline>();

/** Runs fn with `deadline` as the deadline of every call it makes. */
export function withDeadline<T>(deadline: Deadline, fn: () => Promise<T>): Promise<T> {
  return current.run(deadline, fn);
}

/** The running request's deadline, or a fresh default one outside a request. */
export function currentDeadline(): Deadline {
  return current.getStore() ?? new Deadline(config().deadline.defaultBudgetMs);
}

/** The running request's deadline; undefined outside one (CLIs, migrations, scheduled jobs: a JobDeadline is none). */
export function requestDeadline(): Deadline | undefined {
  const deadline = current.getStore();
  return deadline instanceof JobDeadline ? undefined : deadline;
}

/** A Lambda invocation's deadline: its remaining time less the safety margin. */
export function deadlineOf(context: { getRemainingTimeInMillis(): number }): Deadline {
  return new Deadline(context.getRemainingTimeInMillis() - config().deadline.safetyMarginMs);
}

/** The same for a scheduled function's invocation (see JobDeadline). */
export function jobDeadlineOf(context: { getRemainingTimeInMillis(): number }): JobDeadline {
  return new JobDeadline(context.getRemainingTimeInMillis() - config().deadline.safetyMarginMs);
}
