/**
 * The trending counts' Redis keys. Every key carries the hash tag
 * {trending}, so each script can touch all of the minutes it needs: on a
 * cluster all of trending lives on the one master that owns that tag's slot.
 * A minute is a UTC minute, numbered as epoch ms / 60,000 rounded down, the
 * same number the database computes from orders.created_at.
 */

/** The longest window a read may ask for, in minutes. */
export const MAX_MINUTES = 60;
/** The minute sets a read can merge: the window's whole minutes and the current one. */
export const SPAN = MAX_MINUTES + 1;

const BASE = 'trending:{trending}';

export const trendingKeys = {
  /** ZSET item id -> quantity sold in the minute. */
  sales: (minute: number) => `${BASE}:sales:${minute}`,
  /** HASH order id -> its lines, plus the fingerprint field `sum` (lib/trending/lua/trending-add.lua). */
  orders: (minute: number) => `${BASE}:orders:${minute}`,
  /** The lease of the next check of the counts against the orders table. */
  checkLease: `${BASE}:check`,
};

export const minuteOf = (epochMs: number): number => Math.floor(epochMs / 60_000);

/**
 * When a minute's keys expire (epoch s): once no window can reach it (the
 * widest covers MAX_MINUTES minutes before the current one), plus one.
 */
export const expiresAt = (minute: number): number => (minute + SPAN + 1) * 60;

/** The SPAN minutes a read may merge, oldest first, ending with `current`. */
export function spanOf(current: number): number[] {
  return Array.from({ length: SPAN }, (_, i) => current - SPAN + 1 + i);
}
