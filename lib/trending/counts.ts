import addSource from './lua/trending-add.lua';
import fingerprintSource from './lua/trending-fingerprint.lua';
import ordersPrelude from './lua/trending-orders.prelude.lua';
import readSource from './lua/trending-read.lua';
import removeSource from './lua/trending-remove.lua';
import { logger } from '../platform/logger';
import { metric } from '../platform/metrics';
import { redis, type RedisClient } from '../platform/redis/client';
import { luaScript, runScript } from '../platform/redis/scripts';
import { expiresAt, SPAN, spanOf, trendingKeys } from './keys';

/**
 * The trending counts in Redis, per UTC minute: a sorted set of quantities
 * sold per item, and a hash of the orders counted (the once-only marker,
 * their lines for a repair, and a fingerprint to compare with the orders
 * table). A paid order is counted by one script call.
 */

const addScript = luaScript('trendingAdd', 2, addSource, { deadline: true, idempotent: true, prelude: ordersPrelude });
const removeScript = luaScript('trendingRemove', 2, removeSource, { deadline: true, idempotent: true, prelude: ordersPrelude });
const readScript = luaScript('trendingRead', 1 + SPAN, readSource);
const fingerprintScript = luaScript('trendingFingerprint', SPAN, fingerprintSource);

/** One paid order, as counted: its id, its minute, and its lines ("item:qty,..."). */
export interface CountedOrder {
  orderId: number | string;
  minute: number;
  lines: string;
}

export const encodeLines = (lines: readonly { itemId: number; quantity: number }[]): string =>
  lines.map((line) => `${line.itemId}:${line.quantity}`).join(',');

/** Counts orders of one minute, each once; returns how many were new. */
export async function addOrders(minute: number, orders: readonly CountedOrder[], client: RedisClient = redis()): Promise<number> {
  if (orders.length === 0) return 0;
  const args = orders.flatMap((order) => [String(order.orderId), order.lines]);
  return runScript<number>(addScript, [trendingKeys.sales(minute), trendingKeys.orders(minute)], [expiresAt(minute), ...args], client);
}

export async function removeOrders(minute: number, orderIds: readonly string[], client: RedisClient = redis()): Promise<number> {
  if (orderIds.length === 0) return 0;
  return runScript<number>(removeScript, [trendingKeys.sales(minute), trendingKeys.orders(minute)], orderIds, client);
}

/**
 * The pay path's one extra call, after the commit: the order already
 * answers 201, so a failure here fails nothing; it is logged and counted, and
 * the next trending read's check against the orders table (at most
 * CHECK_INTERVAL_MS later) counts the order then.
 */
export async function countPaidOrder(order: CountedOrder, client: RedisClient = redis()): Promise<void> {
  try {
    await addOrders(order.minute, [order], client);
  } catch (error) {
    metric('TrendingCountFailed');
    logger.warn('trending count failed after the commit; the next check counts the order', {
      orderId: String(order.orderId),
      error: error instanceof Error ? error.message : String(error),
    });
  }
}

export interface TopCounts {
  /** This caller holds the check lease: it should compare the counts with the orders table. */
  check: boolean;
  items: { itemId: number; soldQuantity: number }[];
}

/** The best `limit` items of the newest `minutes` + 1 minute sets ending with `current`. */
export async function readTop(
  current: number,
  minutes: number,
  limit: number,
  leaseMs: number,
  client: RedisClient = redis(),
): Promise<TopCounts> {
  const keys = [trendingKeys.checkLease, ...spanOf(current).map(trendingKeys.sales)];
  const reply = await runScript<number[]>(readScript, keys, [minutes + 1, limit, leaseMs], client);
  const items: TopCounts['items'] = [];
  for (let i = 1; i < reply.length; i += 2) items.push({ itemId: Number(reply[i]), soldQuantity: Number(reply[i + 1]) });
  return { check: reply[0] === 1, items };
}

export interface Fingerprint {
  orders: number;
  /** Sum of the order ids mod 1000000007. */
  sum: number;
}

/** Per minute of spanOf(current), oldest first: what Redis counted. */
export async function redisFingerprints(current: number, client: RedisClient = redis()): Promise<Fingerprint[]> {
  const reply = await runScript<number[]>(fingerprintScript, spanOf(current).map(trendingKeys.orders), [], client);
  const prints: Fingerprint[] = [];
  for (let i = 0; i < reply.length; i += 2) prints.push({ orders: Number(reply[i]), sum: Number(reply[i + 1]) });
  return prints;
}

/** The order ids a minute counted (a repair's: only for a minute that counted more than the table holds). */
export async function countedOrderIds(minute: number, client: RedisClient = redis()): Promise<string[]> {
  return (await client.hkeys(trendingKeys.orders(minute))).filter((field) => field !== 'sum');
}
