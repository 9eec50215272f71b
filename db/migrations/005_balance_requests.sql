-- Every balance statement (charge, pay) writes its request's id together with
-- its effect, so a call whose reply was lost (a timeout, a reset connection
-- after the request went out) can be resolved: lib/points/points inserts the
-- same id as a tombstone (status_code NULL) with ON CONFLICT. Whichever row
-- gets there first wins the primary key:
-- - the statement's row: it committed, and the tombstone insert (which waits
--   for the statement's transaction if it is still running) returns its reply;
-- - the tombstone: a statement still on its way then fails on the key and
--   writes nothing, ever.
-- Rows are only needed for the few seconds of a request; purgeBalanceRequests
-- (lib/points/points) deletes day-old ones.
CREATE TABLE balance_requests (
  request_id    uuid PRIMARY KEY,
  user_id       bigint NOT NULL,
  status_code   integer,
  response_body json,
  created_at    timestamptz NOT NULL DEFAULT now(),
  resolved_at   timestamptz,
  CHECK ((status_code IS NULL) = (response_body IS NULL))
);

CREATE INDEX balance_requests_created_at_idx ON balance_requests (created_at);

-- Statements must not pile up behind a held row lock, holding connections
-- long after their callers gave up (a balance statement's caller waits at
-- most DB_CALL_TIMEOUT_MS, 1.2 s by default; the function's timeout is 15 s).
-- lock_timeout is above every call timeout, so it never ends a wait that a
-- client is still waiting for; statement_timeout stays under the Data API's
-- 45 s. New sessions get these; the Data API's pooled ones as they recycle.
-- On the database the migration runs in, whatever it is called.
DO $$
BEGIN
  EXECUTE format('ALTER DATABASE %I SET lock_timeout = %L', current_database(), '3s');
  EXECUTE format('ALTER DATABASE %I SET statement_timeout = %L', current_database(), '30s');
END
$$;
