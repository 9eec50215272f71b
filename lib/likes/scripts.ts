import likeChangeSource from './lua/like-change.prelude.lua';
import likeStatusSource from './lua/like-status.lua';
import likeSource from './lua/like.lua';
import rebuildAuthorSource from './lua/likes-rebuild-author.lua';
import rebuildChunkSource from './lua/likes-rebuild-chunk.lua';
import rebuildLockSource from './lua/likes-rebuild-lock.lua';
import rebuildPostSource from './lua/likes-rebuild-post.lua';
import rebuildUnlockSource from './lua/likes-rebuild-unlock.lua';
import rebuildPrelude from './lua/likes-rebuild.prelude.lua';
import receivedSource from './lua/likes-received.lua';
import streamPrelude from './lua/likes-stream.prelude.lua';
import syncReadSource from './lua/likes-sync-read.lua';
import syncTrimSource from './lua/likes-sync-trim.lua';
import unloadSource from './lua/likes-unload.lua';
import unlikeSource from './lua/unlike.lua';
import { luaScript } from '../platform/redis/scripts';

/** Every Lua script of likes, declared once (KEYS, ARGV and reply: the comment atop each file in lua/). */

// The service (likes.ts).
export const likeScript = luaScript('like', 7, likeSource, { deadline: true, idempotent: true, prelude: likeChangeSource });
export const unlikeScript = luaScript('unlike', 7, unlikeSource, { deadline: true, idempotent: true, prelude: likeChangeSource });
export const likeStatusScript = luaScript('likeStatus', 3, likeStatusSource);
export const receivedScript = luaScript('likesReceived', 3, receivedSource);
export const unloadScript = luaScript('likesUnload', 4, unloadSource, { deadline: true });

// The rebuild after Redis lost its data (rebuild.ts).
const rebuild = { deadline: true, prelude: rebuildPrelude } as const;
const replay = { deadline: true, prelude: [rebuildPrelude, streamPrelude] } as const;
export const rebuildLockScript = luaScript('likesRebuildLock', 3, rebuildLockSource, rebuild);
export const rebuildChunkScript = luaScript('likesRebuildChunk', 3, rebuildChunkSource, rebuild);
export const rebuildPostScript = luaScript('likesRebuildPost', 7, rebuildPostSource, replay);
export const rebuildAuthorScript = luaScript('likesRebuildAuthor', 7, rebuildAuthorSource, replay);
export const rebuildUnlockScript = luaScript('likesRebuildUnlock', 2, rebuildUnlockSource, rebuild);

// The write-behind to PostgreSQL (sync.ts).
export const syncReadScript = luaScript('likesSyncRead', 2, syncReadSource, { prelude: streamPrelude });
export const syncTrimScript = luaScript('likesSyncTrim', 3, syncTrimSource, { deadline: true, prelude: streamPrelude });
