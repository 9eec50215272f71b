-- Points: the lock's fencing token on users, the point history, and the
-- stored replies of Idempotency-Keys.
--
-- No foreign keys to users or orders here: tests (and operators) insert,
-- delete and truncate those tables directly, and a reference from history
-- would make that fail. Rows are tied together by the one statement that
-- writes them all (lib/points/points.ts, lib/points/orders.ts).

-- The fencing token of the last lock holder that wrote this balance
-- (lib/platform/lock.ts). A write carrying an older token is refused, so a holder
-- whose lease expired cannot write after a newer one.
ALTER TABLE users ADD COLUMN lock_fence bigint NOT NULL DEFAULT 0;

-- One row per balance change; amount is signed (a payment is negative), so a
-- user's starting balance plus sum(amount) is their balance.
CREATE TABLE point_history (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id       bigint NOT NULL,
  type          text NOT NULL,
  amount        bigint NOT NULL,
  balance_after bigint NOT NULL CHECK (balance_after >= 0),
  order_id      bigint,
  created_at    timestamptz NOT NULL DEFAULT now(),
  CHECK (
    (type = 'CHARGE' AND amount > 0 AND order_id IS NULL)
    OR (type = 'PAY' AND amount <= 0 AND order_id IS NOT NULL)
  )
);

CREATE INDEX point_history_user_id_idx ON point_history (user_id, id);

-- The reply to a successful request that carried an Idempotency-Key, written
-- in the same statement as its effect: a reply is stored if and only if the
-- effect committed. Only successes are stored.
--
-- response_body is json, not jsonb: json keeps the text as written, so a
-- replay is the first body byte for byte.
--
-- Keys must be kept at least 24 hours (docs/api.md); nothing here deletes them.
-- Deployments purge old ones on a schedule, e.g. daily:
--   DELETE FROM idempotency_keys WHERE created_at < now() - interval '7 days'
-- which idempotency_keys_created_at_idx keeps cheap.
CREATE TABLE idempotency_keys (
  user_id         bigint NOT NULL,
  route           text NOT NULL,
  idempotency_key text NOT NULL,
  request_hash    text NOT NULL,
  status_code     integer NOT NULL,
  response_body   json NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, route, idempotency_key)
);

CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
