/**
 * The points feature's Redis key schema: every key that charges and payments
 * use is named here. REDIS_KEY_PREFIX goes in front of each (ioredis adds it).
 *
 * All of a user's keys carry the hash tag `{u:<userId>}`, so the lock, its
 * fencing counter and the Idempotency-Key markers of one user live in one
 * Redis Cluster slot and one script may touch them together.
 *
 *   lock:{u:<id>}                        STRING  the user's point lock: the holder's random token, with a lease
 *   lock:{u:<id>}:fence                  STRING  its fencing counter (lib/platform/lock derives it from the lock key)
 *   idem:{u:<id>}:<route>:<key>          STRING  an Idempotency-Key's "still running" marker (lib/points/idempotency)
 *
 * The database, not Redis, is the record: users.lock_fence refuses stale
 * holders, idempotency_keys keeps replies, balance_requests resolves calls
 * whose reply was lost (migration 005). Losing any of these keys costs at
 * most a wait or a repaired fence, never a double charge.
 */

/** The hash tag of a user's keys (one cluster slot per user). */
export const userTag = (userId: number): string => `{u:${userId}}`;

/** The user's point lock, shared by charge and pay: one lock per user, not per operation. */
export const pointLockKey = (userId: number): string => `lock:${userTag(userId)}`;

/** The "still running" marker of a user's Idempotency-Key on a route. */
export const idempotencyMarkerKey = (userId: number, route: string, key: string): string => `idem:${userTag(userId)}:${route}:${key}`;
