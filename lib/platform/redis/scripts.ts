import { config } from '../config';
import { currentDeadline } from '../deadline';
import { redis, type RedisClient } from './client';
import { deadlineShas, outcomeUnknown, resolveUnknown, sha1 } from './guard';

/** The Lua script registry and runScript, the one way the features run a script. */

/** A Lua script, kept beside the feature that owns it. Its KEYS count is fixed so ioredis can prefix them. */
export interface LuaScript {
  readonly name: string;
  readonly numberOfKeys: number;
  readonly source: string;
  readonly sha1: string;
  /**
   * A script that writes takes the request's cutoff as ARGV[1] (runScript
   * puts it there) and refuses, before any write, once Redis TIME is past it,
   * with an error reply starting `EXPIRED` (docs/decisions/001-deadline-scripts.md).
   * It starts with these lines (in its own text, or in the prelude that
   * opens it; like.lua's in the one function its body calls):
   *
   *   local now = redis.call('TIME')
   *   if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
   *     return redis.error_reply('EXPIRED the request gave up before this ran')
   *   end
   */
  readonly deadline: boolean;
  /**
   * Running it twice leaves what running it once does (a like, an unlike):
   * when a call's outcome is unknown, runScript calls it again within the
   * request's deadline (docs/decisions/006-lost-reply-resolution.md).
   */
  readonly idempotent: boolean;
}

const declared: LuaScript[] = [];

/**
 * Declares a script. `prelude`: Lua shared by several scripts (local
 * functions, each file saying what it provides and who uses it), joined in
 * front of the script's own text, in order, so shared Lua has one source; the
 * script's SHA is that of the joined text.
 */
export function luaScript(
  name: string,
  numberOfKeys: number,
  body: string,
  options: { deadline?: boolean; idempotent?: boolean; prelude?: string | readonly string[] } = {},
): LuaScript {
  const source = [options.prelude ?? []].flat().concat(body).join('\n');
  const deadline = options.deadline ?? false;
  const idempotent = options.idempotent ?? false;
  if (idempotent && !deadline) throw new Error(`${name}: only a deadline script can be retried safely`);
  if (deadline && !/redis\.call\('TIME'\)[\s\S]*EXPIRED/.test(source)) {
    throw new Error(`${name}: a deadline script must check Redis TIME against ARGV[1] and reply EXPIRED`);
  }
  const digest = sha1(source);
  if (deadline) deadlineShas.add(digest);
  const script = { name, numberOfKeys, source, sha1: digest, deadline, idempotent };
  declared.push(script);
  return script;
}

/** Every script declared so far (tests: each one loads in real Redis). */
export function declaredScripts(): readonly LuaScript[] {
  return declared;
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
 * The cutoff a deadline script gets: the request's, or sooner when the
 * command's own timeout ends first. guardedSend computes the command's timer
 * the same way a moment later, so the timer never ends before this cutoff
 * plus the skew margin.
 */
function commandCutoffMs(): number {
  return currentDeadline().within(config().redis.commandTimeoutMs).serverCutoffMs();
}
