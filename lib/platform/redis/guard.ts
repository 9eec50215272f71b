import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ReplyError, type Command } from 'ioredis';
import { config } from '../config';
import { currentDeadline, withDeadline } from '../deadline';
import { isRedisUnavailable as isUnavailable } from '../dependency-errors';

/**
 * The guard every command of the client passes through (a timer from the
 * request's deadline, a wait for `ready`, held failures of deadline scripts),
 * and the retry of an idempotent script whose outcome is unknown.
 */

/** What ioredis sends itself while a connection is being set up (before `ready`). */
const HANDSHAKE = new Set(['auth', 'hello', 'select', 'info', 'client', 'readonly', 'cluster']);

const isDeadlineScript = (command: Command): boolean =>
  (command.name === 'evalsha' && deadlineShas.has(String(command.args[0]))) ||
  (command.name === 'eval' && deadlineShas.has(sha1(String(command.args[0]))));

/** The parts of an ioredis client (standalone or cluster) the guard needs. */
export interface Guarded {
  readonly status: string;
  readonly commandTimeoutMs: number;
  /** Commands waiting for the connection to be ready. */
  readyWaiters: Set<() => void>;
  connectNow(): void;
}

/**
 * Sends `command` under its timer: min(request time left, command timeout),
 * computed now, so that for a deadline script it ends no earlier than the
 * cutoff runScript put in its ARGV plus the skew margin.
 * Built on ioredis' own per-command timer: docs/decisions/002-redis-command-guard.md.
 */
export function guardedSend(owner: Guarded, command: Command, send: () => unknown, passThrough: boolean): unknown {
  // A command handed back in (a cluster re-routing it) is guarded already:
  // a second wrapper would see the first one's errors, not ioredis' own.
  if (guarded.has(command)) return send();
  guarded.add(command);
  const status = owner.status;
  // ioredis' own commands while it sets a connection up (the ready check,
  // AUTH) run in the async context of whichever request's command opened or
  // lost the connection, and that request's deadline may be long past: under
  // it a ready check after an outage would get 1 ms, fail, and make the
  // client reconnect again, forever. They get the command timeout.
  const setup = status !== 'ready' && HANDSHAKE.has(command.name);
  const timeoutMs = setup ? owner.commandTimeoutMs : Math.max(1, Math.floor(Math.min(owner.commandTimeoutMs, currentDeadline().remainingMs())));
  const startedAt = performance.now();
  const holdFailures = isDeadlineScript(command);
  const settle = command.reject;
  let sent = false;
  let held: Error | undefined;
  let waiter: (() => void) | undefined;
  const timedOut = () => {
    if (waiter) owner.readyWaiters.delete(waiter);
    waiter = undefined;
    const written = sent;
    sent = true; // never sent later: write() sees it
    const failure =
      held ?? new CommandTimeoutError(`Command timed out: ${command.name} got no reply within ${timeoutMs} ms (the command timeout or the request's deadline)`, written);
    // Let a reply already in the socket win (docs/decisions/002-redis-command-guard.md).
    if (holdFailures) setImmediate(() => settle.call(command, failure));
    else settle.call(command, failure);
  };
  command.reject = (error: Error) => {
    // Our timer, possibly wrapped by a cluster redirection (docs/decisions/007-cluster-client-fixes.md).
    if (typeof error?.message === 'string' && error.message.includes(TIMER_MESSAGE) && !(error instanceof ReplyError)) return timedOut();
    // A lost connection after the write: a deadline script may still run, so
    // its failure waits for the timer, that is for its cutoff to have passed.
    // An error reply means Redis answered: the outcome is known, say so now.
    if (holdFailures && sent && !(error instanceof ReplyError)) {
      if (held === undefined) {
        held = error;
        // Settle at the timer's time on our own: a cluster may swallow ioredis'
        // timer into a retry (docs/decisions/007-cluster-client-fixes.md).
        setTimeout(timedOut, Math.max(0, timeoutMs - (performance.now() - startedAt))).unref();
      }
      return;
    }
    return settle.call(command, error);
  };
  command.setTimeout(timeoutMs);
  const write = () => {
    if (sent) return; // the timer fired while the connection was away: never sent
    sent = true;
    waiter = undefined;
    try {
      send();
    } catch (error) {
      settle.call(command, error as Error);
    }
  };
  if (passThrough || status === 'ready' || status === 'end' || (status === 'connect' && HANDSHAKE.has(command.name))) {
    write();
  } else {
    owner.connectNow();
    waiter = write;
    owner.readyWaiters.add(write);
  }
  return command.promise;
}

/** Commands already under a guard (see guardedSend). */
const guarded = new WeakSet<Command>();

/**
 * The guard gave up on a command. One never sent did nothing and never
 * will. One `written` to a connection may have run with its reply lost (a
 * node killed after running it, its replica promoted with the write); a
 * deadline script among them will not run later, its cutoff having passed.
 */
export class CommandTimeoutError extends Error {
  override name = 'CommandTimeoutError';
  constructor(
    message: string,
    readonly written: boolean,
  ) {
    super(message);
  }
}

/** What ioredis' per-command timer rejects with. */
const TIMER_MESSAGE = 'Command timed out';

export function wakeReadyWaiters(owner: Guarded): void {
  const waiting = [...owner.readyWaiters];
  owner.readyWaiters.clear();
  for (const write of waiting) write();
}

export const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
/** SHA-1s of the deadline scripts: their failures are held until their cutoff has passed. */
export const deadlineShas = new Set<string>();

/**
 * The first call's outcome is unknown (see LuaScript.idempotent): call again,
 * with a fresh cutoff each time, until one answers, within
 * REDIS_RESOLVE_BUDGET_MS and the request's deadline; extra round trips on
 * this path only (docs/decisions/006-lost-reply-resolution.md).
 */
export async function resolveUnknown<T>(call: () => Promise<T>, first: unknown): Promise<T> {
  const budget = currentDeadline().within(config().redis.resolveBudgetMs);
  let last = first;
  for (let attempt = 0; budget.remainingMs() >= MIN_RETRY_MS; attempt++) {
    try {
      return await withDeadline(budget, call);
    } catch (error) {
      // A reply (not a transient one) decides; anything else leaves it unknown.
      if (!isUnavailable(error)) throw error;
      last = error;
    }
    await sleep(Math.min(50 * 2 ** attempt, 400, budget.remainingMs()));
  }
  throw last;
}

/** Less time than this left, a retry could only time out. */
const MIN_RETRY_MS = 50;

/** Unavailable, and not a command the guard gave up on before sending it (which proves nothing ran). */
export function outcomeUnknown(error: unknown): boolean {
  return isUnavailable(error) && !(error instanceof CommandTimeoutError && !error.written);
}

