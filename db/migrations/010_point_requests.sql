-- Queued point requests (POST /points/charge and POST /orders with
-- `Prefer: respond-async`, lib/queued-points): one row per request id, the
-- outcome a direct request would have had, written by the same statement as
-- the request's effect (or as its refusal). The row is what makes a queued
-- request apply once: a record delivered twice, a batch redelivered or a
-- consumer that died after its commit finds the row and changes nothing; its
-- plain INSERT (no ON CONFLICT) aborts a statement that lost the race to it.
--
-- status: 'DONE' (status_code 200 or 201, result the success body) or
-- 'REJECTED' (404, 409, 422 or 503, result the problem body). A request with
-- no row yet is PENDING (its accepted marker in Redis says it exists).
CREATE TABLE point_requests (
  request_id  text PRIMARY KEY CHECK (request_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  user_id     bigint NOT NULL,
  route       text NOT NULL,
  status      text NOT NULL CHECK (status IN ('DONE', 'REJECTED')),
  status_code integer NOT NULL,
  -- json keeps the text as written, so GET returns the body byte for byte.
  result      json NOT NULL,
  accepted_at timestamptz NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX point_requests_applied_at_idx ON point_requests (applied_at);
