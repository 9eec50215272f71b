import claimSource from './lua/idempotency-claim.lua';
import releaseSource from './lua/idempotency-release.lua';
import markerPrelude from './lua/marker.prelude.lua';
import acceptSource from './lua/point-request-accept.lua';
import { luaScript } from '../platform/redis/scripts';

/** Every Lua script of points, declared once (KEYS, ARGV and reply: the comment atop each file in lua/). */

// Idempotency-Key's running marker (idempotency.ts).
export const claimScript = luaScript('idempotencyClaim', 1, claimSource, { deadline: true, idempotent: true, prelude: markerPrelude });
export const releaseScript = luaScript('idempotencyRelease', 1, releaseSource);

// Queued point requests' accepted marker (queue/accept.ts); it is forgotten as a running marker is released.
export const acceptScript = luaScript('pointRequestAccept', 1, acceptSource, { deadline: true, idempotent: true, prelude: markerPrelude });
export const forgetScript = luaScript('pointRequestForget', 1, releaseSource);
