-- Durable likes (lib/likes/sync): post_likes is the record of every like,
-- written behind from Redis by sync-likes; likes_sync_state says, per Redis
-- bucket stream, which changes are already in post_likes.
--
-- IF NOT EXISTS: the contract's post_likes (docs/api.md) may exist already, made by
-- its owners; it is adopted as it is.
CREATE TABLE IF NOT EXISTS post_likes (
  post_id    bigint NOT NULL,
  user_id    bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (post_id, user_id)
);

-- One row per bucket (lib/likes/keys LIKE_BUCKETS), written in the same
-- statement as the rows it describes, so "applied" and "recorded" cannot
-- disagree: a sync that dies after its commit, or runs twice, or beside
-- another, skips every stream entry up to last_entry_id. epoch names the
-- incarnation of the bucket's stream: a Redis that lost its data starts a new
-- stream under a new epoch, and its entries are then new, whatever their ids.
-- last_seq is the last change's number, kept to notice a Redis that went back
-- to an older copy (lib/likes/sync).
CREATE TABLE IF NOT EXISTS likes_sync_state (
  bucket        integer PRIMARY KEY CHECK (bucket >= 0),
  epoch         text NOT NULL DEFAULT '',
  last_seq      bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
  last_entry_id text,
  applied_at    timestamptz NOT NULL DEFAULT now()
);
