import { asJson, db, type Queryable } from '../platform/db';
import { logger } from '../platform/logger';
import { metric } from '../platform/metrics';
import { redis, type RedisClient } from '../platform/redis/client';
import { runScript } from '../platform/redis/scripts';
import { LIKE_BUCKETS, bucketMetaKey, bucketPinsKey, changesKey } from './keys';
import { syncReadScript as readScript, syncTrimScript as trimScript } from './scripts';
import { likesSettings } from './settings';

/**
 * sync-likes: moves the changes that the like scripts appended to the bucket
 * streams (lib/likes/keys) into post_likes, the record.
 *
 * Exactly once into the record, whoever runs it and however often:
 * - every change is a stream entry, ordered by its entry id, under the
 *   stream's epoch; likes_sync_state holds, per bucket, the epoch and the id
 *   of the last entry applied;
 * - one statement (so one transaction, one Data API call) applies the entries
 *   after that id and moves the buckets' state from what this sync read to
 *   the batch's last id, as a compare-and-set: a bucket whose state another
 *   sync moved meanwhile is not updated, and none of its changes is applied
 *   (the statement's writes are joined to the state rows it updated);
 * - the stream is trimmed only after the commit, only up to what is
 *   recorded, and never past a rebuild's pin (lua/likes-sync-trim.lua): a
 *   rebuild replays from the stream every change its read of post_likes
 *   lacks. A round reads each stream after what the record holds, not from
 *   its head, so entries a pin (or a sync that died between its commit and
 *   its trim) left there are only trimmed, never applied again, and do not
 *   hold the sync up; two syncs at once read the same changes and the second
 *   one's compare-and-set fails.
 * Why a compare-and-set and not a lock: under READ COMMITTED a statement that
 *   waited for a row lock still reads its older snapshot, and could miss a
 *   row the other sync had just inserted; a failed compare-and-set writes
 *   nothing, and a successful one proves no other sync wrote the bucket after
 *   that snapshot. It also saves the BEGIN, lock and COMMIT calls.
 * Why entry ids and not the change's seq: ids grow with Redis' clock, and
 *   stay above the last one even in a stream that lost its tail. After a
 *   failover to a replica that lagged, seq numbers are issued a second time,
 *   but new entries still sort after everything recorded, so none is skipped
 *   (the seq only reports such a fork, see applyGroup).
 * Why no consumer group: the record of what was applied must commit with the
 *   rows (an XACK cannot), and with it the stream itself is the list of
 *   pending changes. A consumer group would split one bucket's changes
 *   between two syncs, which could then commit out of order; reading from the
 *   stream's head keeps each bucket in order with no acknowledgement to lose.
 *   A sync that dies is "reclaimed" by the next one reading the same head.
 *
 * Order: one batch may like and then unlike the same (post, user); only the
 * last change of each pair is applied, so the row ends as Redis did. A round
 * is one read of the state rows, one read of every bucket (one script each),
 * and one statement per LIKES_SYNC_BATCH_SIZE changes (jsonb_to_recordset).
 *
 * Longer than most modules: much of it is the argument above, kept beside
 * the reads, the one statement and the trim it is about.
 */

/** Apply statements in flight at once. */
const PARALLEL_TRANSACTIONS = 4;

export interface SyncDeps {
  redis: RedisClient;
  db: Queryable;
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
  /** Changes found in the streams that were already recorded (a sync that died before its trim, a trim a rebuild held back): trimmed only. */
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
  /** The changes after what the record holds. */
  changes: Change[];
  /** The stream still starts with changes the record holds. */
  recorded: boolean;
}

interface Trim {
  bucket: number;
  epoch: string;
  /** The last entry the record holds: the trim goes up to it. */
  id: string;
}

// Creates the state rows the first time (one per bucket), and reads them all.
const STATE_SQL = `
WITH created AS (
  INSERT INTO likes_sync_state (bucket) SELECT generate_series(0, :buckets - 1)
  ON CONFLICT (bucket) DO NOTHING
  RETURNING bucket, epoch, last_seq, last_entry_id
)
SELECT bucket, epoch, last_seq, last_entry_id FROM created
UNION ALL
SELECT bucket, epoch, last_seq, last_entry_id FROM likes_sync_state WHERE bucket < :buckets`;

// The writes read "moved", so they run only for the buckets whose state moved
// from what this sync read (see the module comment).
export const APPLY_SQL = `
WITH marks AS (
  SELECT * FROM jsonb_to_recordset(CAST(:marks AS jsonb))
    AS m(b integer, from_epoch text, from_id text, epoch text, seq bigint, id text)
), moved AS (
  UPDATE likes_sync_state AS s
     SET epoch = m.epoch, last_seq = m.seq, last_entry_id = m.id, applied_at = now()
    FROM marks AS m
   WHERE s.bucket = m.b AND s.epoch = m.from_epoch AND coalesce(s.last_entry_id, '') = m.from_id
  RETURNING s.bucket
), changes AS (
  SELECT c.* FROM jsonb_to_recordset(CAST(:changes AS jsonb)) AS c(b integer, p bigint, u bigint, l boolean, t bigint)
   WHERE c.b IN (SELECT bucket FROM moved)
), removed AS (
  DELETE FROM post_likes AS pl USING changes AS c
   WHERE NOT c.l AND pl.post_id = c.p AND pl.user_id = c.u
  RETURNING 1
), added AS (
  INSERT INTO post_likes (post_id, user_id, created_at)
  SELECT p, u, to_timestamp(t / 1000.0) FROM changes WHERE l
  ON CONFLICT (post_id, user_id) DO NOTHING
  RETURNING 1
)
SELECT (SELECT json_agg(bucket) FROM moved) AS moved,
       (SELECT count(*) FROM added) AS added, (SELECT count(*) FROM removed) AS removed`;

/** Syncs until no change is pending (or keepGoing says stop). */
export async function syncLikes(deps: SyncDeps = { redis: redis(), db: db() }, options: SyncOptions = {}): Promise<SyncSummary> {
  const batchSize = options.batchSize ?? likesSettings().LIKES_SYNC_BATCH_SIZE;
  const summary: SyncSummary = { applied: 0, alreadyApplied: 0, transactions: 0, rounds: 0, caughtUp: false };
  let idleRounds = 0;
  while (options.keepGoing?.() ?? true) {
    summary.rounds++;
    // The state first, then the streams after it: a trim another sync made
    // in between only means this one's compare-and-set fails.
    const states = await readStates(deps.db);
    const all = await Promise.all(Array.from({ length: LIKE_BUCKETS }, (_, bucket) => readBucket(bucket, batchSize, states.get(bucket), deps.redis)));
    // Recorded already: only trimmed (as far as no pin holds them).
    const dropped = await Promise.all(
      all.filter((read) => read.recorded).map((read) => trim(deps.redis, { bucket: read.bucket, epoch: read.epoch, id: states.get(read.bucket)!.id })),
    );
    summary.alreadyApplied += dropped.reduce((total, n) => total + n, 0);
    const reads = all.filter((read) => read.changes.length > 0);
    if (reads.length === 0) {
      summary.caughtUp = true;
      break;
    }
    let progressed = false;
    // Groups hold disjoint buckets, so their statements write disjoint state
    // rows and disjoint posts (a post's bucket is its author's): they may run
    // side by side.
    const pending = [...groups(reads, batchSize)];
    const worker = async () => {
      for (let group = pending.shift(); group; group = pending.shift()) {
        const outcome = await applyGroup(group, states, deps, options);
        summary.applied += outcome.applied;
        if (outcome.statements > 0) summary.transactions++;
        progressed ||= outcome.trims > 0;
      }
    };
    await Promise.all(Array.from({ length: PARALLEL_TRANSACTIONS }, worker));
    // Lost every compare-and-set to another sync: try again with fresh state,
    // but a sync that records nothing twice in a row (a gap) stops.
    idleRounds = progressed ? 0 : idleRounds + 1;
    if (idleRounds >= 2) break;
  }
  return summary;
}

interface BucketState {
  epoch: string;
  seq: number;
  /** The last applied entry's id, '' before any. */
  id: string;
}

async function readStates(database: Queryable): Promise<Map<number, BucketState>> {
  const { rows } = await database.query<{ bucket: number; epoch: string; last_seq: number | string; last_entry_id: string | null }>(STATE_SQL, {
    buckets: LIKE_BUCKETS,
  });
  return new Map(rows.map((row) => [Number(row.bucket), { epoch: row.epoch, seq: Number(row.last_seq), id: row.last_entry_id ?? '' }]));
}

async function readBucket(bucket: number, count: number, state: BucketState | undefined, client: RedisClient): Promise<BucketRead> {
  const [epoch, text, recorded] = await runScript<[string, string, number]>(
    readScript,
    [changesKey(bucket), bucketMetaKey(bucket)],
    [count, state?.epoch ?? '', state?.id ?? ''],
    client,
  );
  const changes = text === ''
    ? []
    : text.split('\n').map((line): Change => {
        const [id, seq, postId, userId, liked, atMs] = line.split(' ');
        return { id: id!, seq: Number(seq), postId: Number(postId), userId: Number(userId), liked: liked === '1', atMs: Number(atMs) };
      });
  return { bucket, epoch, changes, recorded: recorded === 1 };
}

function trim(client: RedisClient, { bucket, epoch, id }: Trim): Promise<number> {
  return runScript<number>(trimScript, [changesKey(bucket), bucketMetaKey(bucket), bucketPinsKey(bucket)], [epoch, id], client);
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

async function applyGroup(
  group: BucketRead[],
  states: Map<number, BucketState>,
  deps: SyncDeps,
  options: SyncOptions,
): Promise<{ applied: number; statements: number; trims: number }> {
  // Keyed by pair, last change wins: a like then an unlike in one batch ends unliked.
  const finalChanges = new Map<string, Change & { bucket: number }>();
  const marks: { b: number; from_epoch: string; from_id: string; epoch: string; seq: number; id: string }[] = [];
  const trims: Trim[] = [];
  for (const read of group) {
    const state = states.get(read.bucket) ?? { epoch: '', seq: 0, id: '' };
    const fresh = read.changes; // all after what the record holds (readBucket)
    if (state.epoch === read.epoch && fresh[0]!.seq <= state.seq) {
      // Numbers issued twice: Redis went back to an older copy of this bucket
      // (a failover to a replica that lagged) after later changes had been
      // synced. The new changes are still applied (their ids sort after), but
      // Redis lacks the synced ones it lost: likes:check shows them, and
      // likes:rebuild puts them back.
      logger.error('likes sync: a bucket stream went back to an older copy; run likes:check', {
        bucket: read.bucket,
        recordedSeq: state.seq,
        firstPendingSeq: fresh[0]!.seq,
      });
    }
    for (const change of fresh) finalChanges.set(`${change.postId}:${change.userId}`, { ...change, bucket: read.bucket });
    const last = fresh.at(-1)!;
    marks.push({ b: read.bucket, from_epoch: state.epoch, from_id: state.id, epoch: read.epoch, seq: last.seq, id: last.id });
  }
  // A group holds only buckets with changes (syncLikes): one statement.
  let applied = 0;
  const changes = [...finalChanges.values()].map((change) => ({ b: change.bucket, p: change.postId, u: change.userId, l: change.liked, t: change.atMs }));
  const { rows } = await deps.db.query<{ moved: number[] | string | null }>(APPLY_SQL, { changes: asJson(changes), marks: asJson(marks) });
  const movedValue = rows[0]?.moved ?? null;
  const moved = new Set<number>((typeof movedValue === 'string' ? (JSON.parse(movedValue) as number[]) : (movedValue ?? [])).map(Number));
  for (const mark of marks) {
    if (!moved.has(mark.b)) continue; // another sync recorded this bucket first: the next round sees its state
    trims.push({ bucket: mark.b, epoch: mark.epoch, id: mark.id });
    const bucketChanges = changes.filter((change) => change.b === mark.b);
    applied += bucketChanges.length;
    // How long the oldest change waited to become durable: what a Redis loss would have cost.
    const oldest = Math.min(...bucketChanges.map((change) => change.t));
    if (Number.isFinite(oldest)) metric('LikeSyncLagMs', Math.max(0, Date.now() - oldest));
  }
  if (applied > 0) metric('LikesSynced', applied);
  await options.afterCommit?.();
  // After the commit only: a trimmed change must be in the record.
  await Promise.all(trims.map((done) => trim(deps.redis, done)));
  return { applied, statements: 1, trims: trims.length };
}

/** Does stream entry id `a` ("<ms>-<n>") sort after `b` ('' sorts before every id)? */
export function entryAfter(a: string, b: string): boolean {
  if (b === '') return true;
  const [aMs, aN] = a.split('-').map(Number) as [number, number];
  const [bMs, bN] = b.split('-').map(Number) as [number, number];
  return aMs > bMs || (aMs === bMs && aN > bN);
}

/** Changes waiting in the streams, per bucket with any (likes:check). */
export async function pendingChanges(client: RedisClient = redis()): Promise<Map<number, number>> {
  const lengths = await Promise.all(Array.from({ length: LIKE_BUCKETS }, (_, bucket) => client.xlen(changesKey(bucket))));
  return new Map(lengths.map((length, bucket) => [bucket, length] as const).filter(([, length]) => length > 0));
}
