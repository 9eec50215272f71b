import * as z from 'zod/mini';
import { featureSettings, positiveInt, text } from '../../platform/config';

/** Queued point requests' settings: each variable once, its name the key. */
export const queueSchema = z.object({
  /** The Kinesis stream that carries them, keyed by user. serverless.yml sets it per stage. */
  POINT_REQUEST_STREAM: z._default(text, 'point-requests'),
  /**
   * How long a queued request's "accepted" marker lives in Redis: what GET
   * /points/requests/{id} answers PENDING from until the outcome row exists.
   * Longer than the stream keeps a record (24 h), so a request cannot be
   * forgotten while it may still be applied.
   */
  POINT_REQUEST_MARKER_TTL_S: positiveInt(90000),
  /** How long the consumer waits for one user's run statement (apply.ts): a run is up to a batch of requests. */
  POINT_REQUEST_RUN_TIMEOUT_MS: positiveInt(3000),
});

export type QueueSettings = z.output<typeof queueSchema>;

/** Validated at cold start with the platform's settings (lib/platform/config). */
export const queueSettings = featureSettings(queueSchema);
