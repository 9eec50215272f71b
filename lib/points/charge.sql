-- CHARGE: adds amount to the balance of a user, under the point lock, in one
-- statement (lib/points/balance.ts runs it). Parameters userId, amount,
-- maxBalance, fence, requestId, sentAtMs, cutoffMs, and route, key and
-- requestHash of the Idempotency-Key (key null without one). Replies with one
-- row, the verdict (outcome and the columns of lib/points/balance.ts Verdict)
-- and the reply body when the change was written.
--
-- The start (prior, account, the first outcomes of verdict) and the end
-- (remembered, recorded) are the same in every balance statement
-- (pay.sql; tests/unit/statements.test.ts checks they agree).
--
-- prior is the stored reply of the key; account is the user row, locked for
-- this statement (FOR UPDATE reads its latest committed version, not the
-- snapshot of the statement).
--
-- The first outcomes, in this order: a statement that got its row locks too
-- late writes nothing, whatever else is true. Too late is after the cutoff of
-- the caller less the time the statement took to arrive (from sentAtMs to
-- statement_timestamp()), since its reply takes about as long to go back: a
-- write whose reply could not reach the caller in time would leave a 503 that
-- is not the truth if the resolution, slowed alike, could not tell it either.
-- clock_timestamp() is the time now, after account (and any other FOR UPDATE)
-- has its rows. lock_wait when the statement waited longer for those rows
-- than it took to arrive (contention), expired otherwise (a slow way to the
-- database). Then a stored reply wins over everything else; a holder with a
-- stale fencing token learns nothing else.
--
-- Every write hangs off charged, the fenced balance update: without its row,
-- nothing else is written. remembered stores the reply under the key (no ON
-- CONFLICT: a statement that missed a reply of the same key in its snapshot
-- fails on the primary key, effect included, and the retry gets the replay).
-- recorded writes the request id with its reply; a tombstone of the same id
-- (lib/points/resolve.ts) makes the whole statement fail.
WITH prior AS (
    SELECT request_hash, status_code, response_body
    FROM idempotency_keys
    WHERE user_id = :userId AND route = :route AND idempotency_key = CAST(:key AS text)
  ),
  account AS (
    SELECT point_balance, lock_fence FROM users WHERE id = :userId FOR UPDATE
  ),
  verdict AS (
    SELECT CASE
      WHEN clock_timestamp() > to_timestamp(CAST(:cutoffMs AS bigint) / 1000.0)
          - GREATEST(statement_timestamp() - to_timestamp(CAST(:sentAtMs AS bigint) / 1000.0), interval '0')
        THEN CASE WHEN clock_timestamp() - statement_timestamp() > statement_timestamp() - to_timestamp(CAST(:sentAtMs AS bigint) / 1000.0)
          THEN 'lock_wait' ELSE 'expired' END
      WHEN prior.request_hash IS NOT NULL THEN 'replay'
      WHEN account.point_balance IS NULL THEN 'no_user'
      WHEN account.lock_fence > :fence THEN 'stale_fence'
      WHEN account.point_balance + :amount > :maxBalance THEN 'over_limit'
      ELSE 'ok'
    END AS outcome,
    account.point_balance AS balance, account.lock_fence, prior.*
    FROM (VALUES (1)) AS one
    LEFT JOIN account ON true
    LEFT JOIN prior ON true
  ),
  charged AS (
    UPDATE users SET point_balance = point_balance + :amount, lock_fence = :fence
    FROM verdict
    WHERE users.id = :userId AND users.lock_fence <= :fence AND verdict.outcome = 'ok'
    RETURNING users.point_balance
  ),
  history AS (
    INSERT INTO point_history (user_id, type, amount, balance_after)
    SELECT :userId, 'CHARGE', :amount, point_balance FROM charged
    RETURNING id, balance_after
  ),
  receipt AS (
    SELECT json_build_object('userId', :userId, 'charged', :amount, 'balance', balance_after, 'historyId', id) AS body
    FROM history
  ),
  remembered AS (
    INSERT INTO idempotency_keys (user_id, route, idempotency_key, request_hash, status_code, response_body)
    SELECT :userId, :route, CAST(:key AS text), CAST(:requestHash AS text), 200, receipt.body
    FROM receipt
    WHERE CAST(:key AS text) IS NOT NULL
  ),
  recorded AS (
    INSERT INTO balance_requests (request_id, user_id, status_code, response_body)
    SELECT CAST(:requestId AS uuid), :userId, 200, receipt.body FROM receipt
  )
SELECT verdict.*, receipt.body FROM verdict LEFT JOIN receipt ON true
