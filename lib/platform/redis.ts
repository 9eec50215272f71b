import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import Redis, { Cluster, ReplyError, type ClusterOptions, type Command, type RedisOptions } from 'ioredis';
import { config } from './config';
import { currentDeadline, withDeadline } from './deadline';
import { isRedisUnavailable as isUnavailable, redisReplyCode } from './dependency-errors';
import { DependencyUnavailableError } from './errors';
import { logger } from './logger';
import { redisAuthToken } from './secrets';

/**
 * The one Redis client of a Lambda instance, created on first use and reused
 * by every invocation the instance serves.
 *
 * Every command obeys the request's deadline (lib/platform/deadline): the
 * client stops waiting for it after min(time the request has left,
 * REDIS_COMMAND_TIMEOUT_MS), and the request answers 503. What that must not
 * lead to is a command running after its request gave up, so:
 * - ioredis' offline queue is off and so is its re-sending of unanswered
 *   commands after a reconnect. A command issued while the connection is down
 *   waits here, bounded by its timer, for the connection to be ready, and is
 *   dropped unsent if the timer fires first.
 * - A command already written may still run late (Redis paused, a reply lost
 *   with the connection). Scripts that write are deadline scripts
 *   (LuaScript.deadline): Redis refuses them once its clock is past their
 *   cutoff, and a failure of one whose outcome is unknown (connection lost
 *   after it was written) is reported only once its timer has run out, that
 *   is after cutoff + CLOCK_SKEW_MARGIN_MS; a 503 then means it did nothing.
 *   The other commands are reads or harmless to repeat late.
 * - Nothing answering for a whole command timeout on a connection that looks
 *   open is a dead connection (socketTimeout): the client reconnects.
 * - READONLY (a primary demoted by an ElastiCache failover) and LOADING make
 *   it reconnect, so DNS can lead it to the new primary; both are 503.
 * - Reconnect attempts back off to at most RECONNECT_MAX_DELAY_MS, so the
 *   API serves again well within 2 s of Redis coming back.
 */

export type RedisClient = Redis | Cluster;

/** A connection silent for this many command timeouts is given up. */
const SOCKET_TIMEOUT_FACTOR = 5;

/** Longest pause between reconnect attempts: one SYN per half second is nothing, a slow recovery is not. */
const RECONNECT_MAX_DELAY_MS = 500;

let client: RedisClient | undefined;

export function redis(): RedisClient {
  client ??= createClient();
  return client;
}

/** Closes the instance's client (scripts and tests; a Lambda never needs to). */
export async function closeRedis(): Promise<void> {
  const current = client;
  client = undefined;
  if (current) await current.quit().catch(() => current.disconnect());
}

/**
 * A new client with this module's settings, for code that needs a connection
 * of its own (tests, tools); the instance's shared one is redis().
 */
export function createClient(): RedisClient {
  const { url, cluster, keyPrefix, connectTimeoutMs, commandTimeoutMs, authParameter } = config().redis;
  // Built without its AUTH token, a client would be refused (NOAUTH) for as
  // long as the instance keeps it. No client, then: redis() tries again on
  // the next call, once lib/platform/secrets has read the token.
  if (authParameter && redisAuthToken() === undefined) {
    throw new DependencyUnavailableError('redis', { cause: new Error(`the Redis AUTH token (SSM parameter ${authParameter}) has not been read`) });
  }
  const options: RedisOptions = {
    connectTimeout: connectTimeoutMs,
    // Each command gets its own timer from the request's deadline (guardedSend).
    commandTimeout: undefined,
    // A command that was in flight when the connection closed fails at once
    // (deadline scripts: at their timer), instead of waiting for reconnects.
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    // Commands waiting and nothing arriving for a whole command timeout on a
    // connection that looks open: a node gone without a reset, a black hole.
    // The socket is destroyed and the client reconnects, instead of waiting
    // on it until TCP gives up minutes later. Well after the commands' own
    // timers: a Redis that stalls for seconds (paused, a long script, a
    // fork) then ends in their timeouts, which prove nothing ran (503 at
    // once), rather than in a lost connection, whose outcome is unknown and
    // costs an idempotent script its resolve budget.
    socketTimeout: commandTimeoutMs * SOCKET_TIMEOUT_FACTOR,
    retryStrategy: (attempt) => Math.min(attempt * 100, RECONNECT_MAX_DELAY_MS),
    reconnectOnError: (error) => (redisReplyCode(error.message) === 'READONLY' || redisReplyCode(error.message) === 'LOADING' ? 1 : false),
    keyPrefix,
    // Deployed stages read the AUTH token from SSM at cold start (lib/platform/secrets):
    // it never sits in REDIS_URL or the environment.
    ...(redisAuthToken() !== undefined ? { password: redisAuthToken() } : {}),
  };
  const created: RedisClient = cluster ? createCluster(url, options, commandTimeoutMs) : new DeadlineRedis(url, options, commandTimeoutMs);
  let lastError = '';
  created.on('error', (error: Error) => {
    // ioredis emits the same error on every reconnect attempt; log changes only.
    if (error.message === lastError) return;
    lastError = error.message;
    logger.warn('redis connection error', { error: error.message });
  });
  created.on('ready', () => {
    lastError = '';
  });
  return created;
}

function createCluster(url: string, redisOptions: RedisOptions, commandTimeoutMs: number): Cluster {
  const parsed = new URL(url);
  const tls = parsed.protocol === 'rediss:' ? {} : undefined;
  const options: ClusterOptions = {
    keyPrefix: redisOptions.keyPrefix,
    enableOfflineQueue: false,
    clusterRetryStrategy: (attempt) => Math.min(attempt * 100, RECONNECT_MAX_DELAY_MS),
    // ElastiCache's TLS certificates name the configuration endpoint, not the
    // node IPs that DNS resolution would put in their place.
    dnsLookup: (address, callback) => callback(null, address),
    redisOptions: {
      ...redisOptions,
      keyPrefix: undefined,
      tls,
      username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
      password: redisAuthToken() ?? (parsed.password ? decodeURIComponent(parsed.password) : undefined),
    },
  };
  return new DeadlineCluster([{ host: parsed.hostname, port: Number(parsed.port || 6379) }], options, commandTimeoutMs);
}

/** What ioredis sends itself while a connection is being set up (before `ready`). */
const HANDSHAKE = new Set(['auth', 'hello', 'select', 'info', 'client', 'readonly', 'cluster']);

const isDeadlineScript = (command: Command): boolean =>
  (command.name === 'evalsha' && deadlineShas.has(String(command.args[0]))) ||
  (command.name === 'eval' && deadlineShas.has(sha1(String(command.args[0]))));

/** The parts of an ioredis client (standalone or cluster) the guard needs. */
interface Guarded {
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
 *
 * Built on the command's own promise and ioredis' own per-command timer
 * (Command.setTimeout, cleared when the command settles) rather than a
 * promise and a timer of our own: the hot path stays one EVALSHA with next to
 * no added work.
 */
function guardedSend(owner: Guarded, command: Command, send: () => unknown, passThrough: boolean): unknown {
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
    sent = true; // never sent later: write() sees it
    const failure = held ?? new CommandTimeoutError(`Command timed out: ${command.name} got no reply within ${timeoutMs} ms (the command timeout or the request's deadline)`);
    // Timers run before I/O in Node's event loop: after a stall (GC, a busy
    // core) a reply may already wait in the socket when the timer fires.
    // Giving the poll phase its turn first lets that reply win, so a 503 is
    // never sent for a script whose reply was there.
    if (holdFailures) setImmediate(() => settle.call(command, failure));
    else settle.call(command, failure);
  };
  command.reject = (error: Error) => {
    // Our timer: the request stops waiting now. A cluster may hand it back
    // wrapped ("Too many Cluster redirections. Last error: ... Command timed out").
    if (typeof error?.message === 'string' && error.message.includes(TIMER_MESSAGE) && !(error instanceof ReplyError)) return timedOut();
    // A lost connection after the write: a deadline script may still run, so
    // its failure waits for the timer, that is for its cutoff to have passed.
    // An error reply means Redis answered: the outcome is known, say so now.
    if (holdFailures && sent && !(error instanceof ReplyError)) {
      if (held === undefined) {
        held = error;
        // ioredis' timer rejects through whatever reject is current when it
        // fires, which a cluster may have swallowed into a retry: settle at
        // the timer's time on our own, failure path only.
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
 * The guard gave up on a command: it was never sent, or it is a deadline
 * script whose cutoff has passed, so it did nothing and never will.
 */
export class CommandTimeoutError extends Error {
  override name = 'CommandTimeoutError';
}

/** What ioredis' per-command timer rejects with. */
const TIMER_MESSAGE = 'Command timed out';

function wakeReadyWaiters(owner: Guarded): void {
  const waiting = [...owner.readyWaiters];
  owner.readyWaiters.clear();
  for (const write of waiting) write();
}

/**
 * ioredis 5.9 arms socketTimeout's timer when it writes and clears it only
 * on data: a connection lost with a command in flight leaves the timer
 * running, and it then destroys the next connection, a second after the
 * lost write, taking a retried command down with it. The timer belongs to
 * the connection that closed.
 */
function forgetSocketTimerOnClose(client: Redis): void {
  client.on('close', () => {
    const owner = client as unknown as { socketTimeoutTimer?: NodeJS.Timeout };
    clearTimeout(owner.socketTimeoutTimer);
    owner.socketTimeoutTimer = undefined;
  });
}

class DeadlineRedis extends Redis implements Guarded {
  readyWaiters = new Set<() => void>();

  constructor(url: string, options: RedisOptions, readonly commandTimeoutMs: number) {
    super(url, options);
    this.on('ready', () => wakeReadyWaiters(this));
    forgetSocketTimerOnClose(this);
  }

  connectNow(): void {
    if (this.status === 'wait') this.connect().catch(() => undefined);
  }

  override sendCommand(command: Command, stream?: Parameters<Redis['sendCommand']>[1]): unknown {
    // quit keeps ioredis' own handling; a pipeline's commands go out with it.
    return guardedSend(this, command, () => super.sendCommand(command, stream), stream !== undefined || command.name === 'quit');
  }
}

/**
 * The cluster client gets the same timer and the same wait for `ready`. Its
 * nodes are plain ioredis clients that may re-send a command after a
 * redirection or a reconnect; with deadline scripts for every write that
 * matters, a late re-send refuses or is harmless.
 */
class DeadlineCluster extends Cluster implements Guarded {
  readyWaiters = new Set<() => void>();

  constructor(nodes: ConstructorParameters<typeof Cluster>[0], options: ClusterOptions, readonly commandTimeoutMs: number) {
    super(nodes, options);
    this.on('ready', () => wakeReadyWaiters(this));
    this.on('+node', (node: Redis) => forgetSocketTimerOnClose(node));
  }

  connectNow(): void {
    if (this.status === 'wait') this.connect().catch(() => undefined);
  }

  override sendCommand(command: Command, stream?: Parameters<Cluster['sendCommand']>[1], node?: unknown): unknown {
    return guardedSend(this, command, () => super.sendCommand(command, stream, node), stream !== undefined || node !== undefined || command.name === 'quit');
  }
}

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
/** SHA-1s of the deadline scripts: their failures are held until their cutoff has passed. */
const deadlineShas = new Set<string>();

/** A Lua script from lua/. Its KEYS count is fixed so ioredis can prefix them. */
export interface LuaScript {
  readonly name: string;
  readonly numberOfKeys: number;
  readonly source: string;
  readonly sha1: string;
  /**
   * A script that writes takes the request's cutoff as ARGV[1] (runScript
   * puts it there) and must refuse, before any write, once Redis TIME is past
   * it, with an error reply starting `EXPIRED`: a command that reaches Redis
   * after its client gave up (Redis paused, a re-sent command after a
   * reconnect) then does nothing. Its first lines are always:
   *
   *   local now = redis.call('TIME')
   *   if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
   *     return redis.error_reply('EXPIRED the request gave up before this ran')
   *   end
   */
  readonly deadline: boolean;
  /**
   * Running it twice leaves what running it once does (a like, an unlike):
   * when a call's outcome is unknown (the connection was lost after the
   * write, or an EXPIRED came back for a re-send of a call that may have
   * run), runScript calls it once more with a fresh cutoff, within the
   * request's deadline, so that a 503 still means nothing happened.
   */
  readonly idempotent: boolean;
}

export function luaScript(
  name: string,
  numberOfKeys: number,
  source: string,
  options: { deadline?: boolean; idempotent?: boolean } = {},
): LuaScript {
  const deadline = options.deadline ?? false;
  const idempotent = options.idempotent ?? false;
  if (idempotent && !deadline) throw new Error(`${name}: only a deadline script can be retried safely`);
  if (deadline && !/redis\.call\('TIME'\)[\s\S]*EXPIRED/.test(source)) {
    throw new Error(`${name}: a deadline script must check Redis TIME against ARGV[1] and reply EXPIRED`);
  }
  const digest = sha1(source);
  if (deadline) deadlineShas.add(digest);
  return { name, numberOfKeys, source, sha1: digest, deadline, idempotent };
}

type ScriptRunner = (...keysAndArgs: (string | number)[]) => Promise<unknown>;
const defined = new WeakMap<RedisClient, Set<string>>();

/**
 * Runs a script in one round trip: EVALSHA, falling back to EVAL (which also
 * caches it server-side) only when Redis answers NOSCRIPT, e.g. after a
 * failover or on the first call to a fresh node.
 */
export async function runScript<T>(
  script: LuaScript,
  keys: readonly string[],
  args: readonly (string | number)[],
  client: RedisClient = redis(),
): Promise<T> {
  if (keys.length !== script.numberOfKeys) {
    throw new Error(`${script.name} takes ${script.numberOfKeys} keys, got ${keys.length}`);
  }
  let names = defined.get(client);
  if (!names) defined.set(client, (names = new Set()));
  if (!names.has(script.name)) {
    client.defineCommand(script.name, { numberOfKeys: script.numberOfKeys, lua: script.source });
    names.add(script.name);
  }
  const run = (client as unknown as Record<string, ScriptRunner>)[script.name]!;
  const call = () => run.call(client, ...keys, ...(script.deadline ? [commandCutoffMs(), ...args] : args)) as Promise<T>;
  if (!script.idempotent) return call();
  try {
    return await call();
  } catch (error) {
    if (!outcomeUnknown(error)) throw error;
    return resolveUnknown(call, error);
  }
}

/**
 * The first call's outcome is unknown (see LuaScript.idempotent): call again,
 * with a fresh cutoff each time, until one answers, within
 * REDIS_RESOLVE_BUDGET_MS and the request's deadline. A primary that died
 * with the call in flight is replaced within a failover (2 to 3 s here), so
 * one retry right away is not enough. Extra round trips on this path only.
 * Past the budget the last error stands: the one case where a 503 may hide
 * a like that stands.
 */
async function resolveUnknown<T>(call: () => Promise<T>, first: unknown): Promise<T> {
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

/** Unavailable, but not because the guard gave up (which proves nothing ran). */
function outcomeUnknown(error: unknown): boolean {
  return isUnavailable(error) && !(error instanceof CommandTimeoutError);
}

/**
 * The cutoff a deadline script gets: the request's, or sooner when the
 * command's own timeout ends first. guardedSend computes the command's timer
 * the same way a moment later, so the timer never ends before this cutoff
 * plus the skew margin.
 */
function commandCutoffMs(): number {
  return currentDeadline().within(config().redis.commandTimeoutMs).serverCutoffMs();
}

/** Does this error mean "Redis cannot be reached right now" (a 503, not a bug)? The list is lib/platform/dependency-errors'. */
export function isRedisUnavailable(error: unknown): boolean {
  return isUnavailable(error);
}
