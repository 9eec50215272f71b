import syncReadSource from '../../lua/likes-sync-read.lua';
import syncTrimSource from '../../lua/likes-sync-trim.lua';
import { config } from '../platform/config';
import { asJson, db, type Database } from '../platform/db';
import { logger } from '../platform/logger';
import { luaScript, redis, runScript, type RedisClient } from '../platform/redis';
import { LIKE_BUCKETS, bucketMetaKey, changesKey } from './keys';

/**
 * sync-likes: moves the changes that the like scripts appended to the bucket
 * streams (lib/likes/keys) into post_likes, the record.
 *
 * Exactly once into the record, whoever runs it and however often:
 * - every change carries its number in its bucket (seq) and the stream's
 *   epoch; likes_sync_state holds, per bucket, the epoch and seq applied last,
 *   and is written in the same transaction as the rows;
 * - that transaction first locks the buckets' state rows (an upsert, in
 *   bucket order, so two syncs never deadlock) and applies only the changes
 *   after the recorded seq, and only when they follow it without a gap;
 * - the stream is trimmed only after the commit, and only up to what is
 *   recorded. A sync that dies between the commit and the trim leaves changes
 *   that the next one reads, finds recorded, and only trims; two syncs at once
 *   read the same changes and the second one to lock applies none of them.
 * Why no consumer group: the record of what was applied must live in the
 *   transaction (an XACK cannot commit with it), and with it the stream
 *   itself is the list of pending changes. A consumer group would split the
 *   changes between two syncs, which could then commit out of order; reading
 *   from the stream's head keeps each bucket in order with no acknowledgement
 *   to lose. A sync that dies is "reclaimed" by the next one reading the same
 *   head.
 *
 * Order: one batch may like and then unlike the same (post, user); only the
 * last change of each pair is applied, so the row ends as Redis did. Each
 * transaction is four Data API calls (begin, lock, one multi-row statement
 * through jsonb_to_recordset, commit) for up to LIKES_SYNC_BATCH_SIZE changes.
 */

const readScript = luaScript('likesSyncRead', 2, syncReadSource);
const trimScript = luaScript('likesSyncTrim', 2, syncTrimSource, { deadline: true });

export interface SyncDeps {
  redis: RedisClient;
  db: Database;
}

export interface SyncOptions {
  /** Changes per transaction; LIKES_SYNC_BATCH_SIZE by default. */
  batchSize?: number;
  /** Asked before each round: false stops the sync (a Lambda near its timeout). */
  keepGoing?: () => boolean;
  /** Tests: runs after each commit, before the trim (a sync that dies there). */
  afterCommit?: () => Promise<void>;
}

export interface SyncSummary {
  /** Changes written to post_likes (after keeping the last change of each pair). */
  applied: number;
  /** Changes read that were already recorded (a rerun, or another sync's). */
  alreadyApplied: number;
  transactions: number;
  rounds: number;
  /** True when the last round found no change pending. */
  caughtUp: boolean;
}

interface Change {
  id: string;
  seq: number;
  postId: number;
  userId: number;
  liked: boolean;
  atMs: number;
}

interface BucketRead {
  bucket: number;
  epoch: string;
  changes: Change[];
}

interface Trim {
  bucket: number;
  epoch: string;
  seq: number;
  id: string;
}

const LOCK_SQL = `
INSERT INTO likes_sync_state AS s (bucket)
SELECT b::integer FROM jsonb_array_elements_text(CAST(:buckets AS jsonb)) AS x(b) ORDER BY 1
ON CONFLICT (bucket) DO UPDATE SET bucket = s.bucket
RETURNING s.bucket, s.epoch, s.last_seq`;

const APPLY_SQL = `
WITH changes AS (
  SELECT * FROM jsonb_to_recordset(CAST(:changes AS jsonb)) AS c(p bigint, u bigint, l boolean, t bigint)
), removed AS (
  DELETE FROM post_likes AS pl USING changes AS c
   WHERE NOT c.l AND pl.post_id = c.p AND pl.user_id = c.u
  RETURNING 1
), added AS (
  INSERT INTO post_likes (post_id, user_id, created_at)
  SELECT p, u, to_timestamp(t / 1000.0) FROM changes WHERE l
  ON CONFLICT (post_id, user_id) DO NOTHING
  RETURNING 1
), marked AS (
  UPDATE likes_sync_state AS s
     SET epoch = m.epoch, last_seq = m.seq, last_entry_id = m.id, applied_at = now()
    FROM jsonb_to_recordset(CAST(:marks AS jsonb)) AS m(b integer, epoch text, seq bigint, id text)
   WHERE s.bucket = m.b
  RETURNING 1
)
SELECT (SELECT count(*) FROM added) AS added, (SELECT count(*) FROM removed) AS removed,
       (SELECT count(*) FROM marked) AS marked`;

/** Syncs until no change is pending (or keepGoing says stop). */
export async function syncLikes(deps: SyncDeps = { redis: redis(), db: db() }, options: SyncOptions = {}): Promise<SyncSummary> {
  const batchSize = options.batchSize ?? config().likes.syncBatchSize;
  const summary: SyncSummary = { applied: 0, alreadyApplied: 0, transactions: 0, rounds: 0, caughtUp: false };
  while (options.keepGoing?.() ?? true) {
    summary.rounds++;
    const reads = (await Promise.all(Array.from({ length: LIKE_BUCKETS }, (_, bucket) => readBucket(bucket, batchSize, deps.redis)))).filter(
      (read) => read.changes.length > 0,
    );
    if (reads.length === 0) {
      summary.caughtUp = true;
      break;
    }
    let progressed = false;
    for (const group of groups(reads, batchSize)) {
      const outcome = await applyGroup(group, deps, options);
      summary.applied += outcome.applied;
      summary.alreadyApplied += outcome.alreadyApplied;
      summary.transactions++;
      progressed ||= outcome.trims.length > 0;
    }
    // Nothing could be recorded (a gap, see applyGroup): rereading would find the same.
    if (!progressed) break;
  }
  return summary;
}

async function readBucket(bucket: number, count: number, client: RedisClient): Promise<BucketRead> {
  const [epoch, entries] = await runScript<[string, [string, string[]][]]>(readScript, [changesKey(bucket), bucketMetaKey(bucket)], [count], client);
  const changes = entries.map(([id, fields]): Change => {
    const f: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
    return { id, seq: Number(f.s), postId: Number(f.p), userId: Number(f.u), liked: f.o === '1', atMs: Number(f.t) };
  });
  return { bucket, epoch, changes };
}

/** Buckets packed into transactions of at most batchSize changes (a bucket's read is never more). */
function* groups(reads: BucketRead[], batchSize: number): Generator<BucketRead[]> {
  let group: BucketRead[] = [];
  let size = 0;
  for (const read of reads) {
    if (size + read.changes.length > batchSize && group.length > 0) {
      yield group;
      group = [];
      size = 0;
    }
    group.push(read);
    size += read.changes.length;
  }
  if (group.length > 0) yield group;
}

async function applyGroup(group: BucketRead[], deps: SyncDeps, options: SyncOptions): Promise<{ applied: number; alreadyApplied: number; trims: Trim[] }> {
  const outcome = await deps.db.transaction(async (tx) => {
    const { rows } = await tx.query<{ bucket: number; epoch: string; last_seq: number | string }>(LOCK_SQL, {
      buckets: asJson(group.map((read) => read.bucket)),
    });
    const states = new Map(rows.map((row) => [Number(row.bucket), { epoch: row.epoch, seq: Number(row.last_seq) }]));
    // Keyed by pair, last change wins: a like then an unlike in one batch ends unliked.
    const finalChanges = new Map<string, Change>();
    const marks: { b: number; epoch: string; seq: number; id: string }[] = [];
    const trims: Trim[] = [];
    let alreadyApplied = 0;
    for (const read of group) {
      const state = states.get(read.bucket)!;
      // Another epoch in the record: this stream started after Redis lost its data, and none of it is recorded.
      const recorded = state.epoch === read.epoch ? state.seq : 0;
      const fresh = read.changes.filter((change) => change.seq > recorded);
      alreadyApplied += read.changes.length - fresh.length;
      if (fresh.length > 0 && fresh[0]!.seq !== recorded + 1) {
        // Changes between the record and this read are missing: applying
        // these would skip them. Not a race (every sync reads from the head);
        // a stream edited by hand, or a bug. Leave it for an operator (likes:check).
        logger.error('likes sync: changes missing from a bucket stream; bucket not synced', {
          bucket: read.bucket,
          recordedSeq: recorded,
          firstPendingSeq: fresh[0]!.seq,
        });
        continue;
      }
      for (const change of fresh) finalChanges.set(`${change.postId}:${change.userId}`, change);
      const last = fresh.at(-1);
      if (last) marks.push({ b: read.bucket, epoch: read.epoch, seq: last.seq, id: last.id });
      const lastRecorded = read.changes.filter((change) => change.seq <= (last?.seq ?? recorded)).at(-1)!;
      trims.push({ bucket: read.bucket, epoch: read.epoch, seq: lastRecorded.seq, id: lastRecorded.id });
    }
    if (marks.length > 0) {
      const changes = [...finalChanges.values()].map((change) => ({ p: change.postId, u: change.userId, l: change.liked, t: change.atMs }));
      const { rows: applied } = await tx.query<{ marked: number | string }>(APPLY_SQL, { changes: asJson(changes), marks: asJson(marks) });
      if (Number(applied[0]?.marked) !== marks.length) throw new Error(`likes sync: recorded ${applied[0]?.marked} of ${marks.length} buckets`);
    }
    return { applied: finalChanges.size, alreadyApplied, trims };
  });
  await options.afterCommit?.();
  // After the commit only: a trimmed change must be in the record.
  await Promise.all(
    outcome.trims.map((trim) => runScript(trimScript, [changesKey(trim.bucket), bucketMetaKey(trim.bucket)], [trim.epoch, trim.seq, trim.id], deps.redis)),
  );
  return outcome;
}

/** Changes waiting in the streams, per bucket with any (likes:check). */
export async function pendingChanges(client: RedisClient = redis()): Promise<Map<number, number>> {
  const lengths = await Promise.all(Array.from({ length: LIKE_BUCKETS }, (_, bucket) => client.xlen(changesKey(bucket))));
  return new Map(lengths.map((length, bucket) => [bucket, length] as const).filter(([, length]) => length > 0));
}
