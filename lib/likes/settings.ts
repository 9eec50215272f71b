import * as z from 'zod/mini';
import { featureSettings, positiveInt } from '../platform/config';

/** Durable likes' settings: each variable once, its name the key (README "Configuration" lists them all). */
export const likesSchema = z.object({
  /**
   * A post deleted from the database stops taking likes (404) at most this
   * long after, when its authorship marker expires and is checked against
   * the database again.
   */
  LIKES_POST_RECHECK_SECONDS: positiveInt(300),
  /** Lease of the lock that lets one caller rebuild a post's likes or an author's count; renewed per chunk. */
  LIKES_REBUILD_LEASE_MS: positiveInt(5000),
  /** User ids per Redis call when a post's likes are rebuilt, so Redis is never blocked for long. */
  LIKES_REBUILD_CHUNK_SIZE: positiveInt(2000),
  /** Changes per sync-likes transaction (one multi-row statement): keeps each Data API request small. */
  LIKES_SYNC_BATCH_SIZE: positiveInt(1000),
});

export type LikesSettings = z.output<typeof likesSchema>;

/** Validated at cold start with the platform's settings (lib/platform/config). */
export const likesSettings = featureSettings(likesSchema);
