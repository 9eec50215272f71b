/**
 * APPLY_RUN: one statement that applies a run of one user's queued requests,
 * in order, all or nothing: each request's outcome is computed from the
 * balance and stock its predecessors left (a recursive CTE over the run),
 * then every effect is written, and every outcome stored in point_requests
 * with it. The same checks and the same bodies as a direct charge or
 * payment (lib/points/charge.sql, lib/points/pay.sql); an Idempotency-Key shares
 * idempotency_keys with the direct path, so a key is applied once whichever
 * way it came.
 *
 * Parameters: :userId, :fence (the lock's fencing token), :cutoffMs (ms
 * since the epoch: past it, after taking its row locks, the statement
 * writes nothing), :maxBalance, :requests (JSON array, in order: { n, id,
 * route, amount, lines: [{ item_id, quantity, line_no }], key, hash,
 * accepted_ms }), :requestCount and :lineCount (their numbers).
 *
 * - Requests whose id already has a row are skipped: redelivered records,
 *   a consumer that died after its commit. The INSERT of the rows is plain:
 *   a statement that raced another to the same id (an attempt whose reply
 *   was lost and its retry) fails whole on the primary key.
 * - `gate`: 'expired' or 'stale_fence' (a newer lock holder has written)
 *   write nothing at all; otherwise 'ok'.
 * - Ids for orders and history rows are drawn from their sequences up front,
 *   so each request's body can name its own.
 * - Reply: one row: the gate, the ids that already had a row, and each
 *   applied request's { id, status, statusCode } in order.
 */
export const APPLY_RUN = `
WITH RECURSIVE
  -- The LIMITs tell the planner the real row counts (it guesses 100 rows per
  -- jsonb_to_recordset): with its guesses this statement's estimated cost
  -- crossed jit_above_cost, and compiling it took half a second per call.
  input AS (
    SELECT * FROM jsonb_to_recordset(CAST(:requests AS jsonb))
      AS r(n integer, id text, route text, amount bigint, lines jsonb, key text, hash text, accepted_ms bigint)
    LIMIT :requestCount
  ),
  known AS (
    SELECT request_id FROM point_requests WHERE request_id IN (SELECT id FROM input)
  ),
  account AS (
    SELECT point_balance, lock_fence FROM users WHERE id = :userId FOR UPDATE
  ),
  all_lines AS (
    SELECT input.n, line.item_id, line.quantity, line.line_no
    FROM input
    CROSS JOIN LATERAL jsonb_to_recordset(coalesce(input.lines, '[]'::jsonb)) AS line(item_id bigint, quantity integer, line_no integer)
    LIMIT :lineCount
  ),
  -- Locked in item-id order, as the direct path locks them: no deadlock between the two.
  stocked AS (
    SELECT id, price, stock FROM items WHERE id IN (SELECT item_id FROM all_lines) ORDER BY id FOR UPDATE
  ),
  prior AS (
    SELECT route, idempotency_key, request_hash, status_code, response_body
    FROM idempotency_keys
    WHERE user_id = :userId AND (route, idempotency_key) IN (SELECT route, key FROM input WHERE key IS NOT NULL)
  ),
  gate AS (
    SELECT CASE
      WHEN clock_timestamp() > to_timestamp(CAST(:cutoffMs AS bigint) / 1000.0) THEN 'expired'
      WHEN account.lock_fence > :fence THEN 'stale_fence'
      ELSE 'ok'
    END AS state,
    account.point_balance AS balance, account.lock_fence
    FROM (VALUES (1)) AS one LEFT JOIN account ON true
  ),
  pending AS (
    SELECT row_number() OVER (ORDER BY input.n) AS step, input.*, prior.request_hash AS prior_hash,
      prior.status_code AS prior_status, prior.response_body AS prior_body
    FROM input
    LEFT JOIN prior ON prior.route = input.route AND prior.idempotency_key = input.key
    WHERE input.id NOT IN (SELECT request_id FROM known)
  ),
  steps AS (
    SELECT CAST(0 AS bigint) AS step, NULL::text AS id, NULL::text AS route, NULL::text AS outcome,
      gate.balance AS before, gate.balance AS balance,
      (SELECT coalesce(jsonb_object_agg(id::text, stock), '{}'::jsonb) FROM stocked) AS stock,
      NULL::numeric AS total, NULL::bigint AS missing_item, NULL::bigint AS short_item,
      NULL::integer AS short_stock, NULL::integer AS short_quantity,
      NULL::bigint AS amount, NULL::jsonb AS lines, NULL::text AS key, NULL::text AS hash,
      NULL::integer AS prior_status, NULL::json AS prior_body, NULL::bigint AS accepted_ms
    FROM gate WHERE gate.state = 'ok'
    UNION ALL
    SELECT p.step, p.id, p.route, decided.outcome,
      s.balance,
      CASE WHEN decided.outcome <> 'ok' THEN s.balance
           WHEN p.route = 'POST /points/charge' THEN s.balance + p.amount
           ELSE s.balance - CAST(o.total AS bigint) END,
      CASE WHEN decided.outcome = 'ok' AND p.route = 'POST /orders' THEN s.stock || o.stock_after ELSE s.stock END,
      o.total, o.missing_item, o.short_item, o.short_stock, o.short_quantity,
      p.amount, p.lines, p.key, p.hash, p.prior_status, p.prior_body, p.accepted_ms
    FROM steps s
    JOIN pending p ON p.step = s.step + 1
    CROSS JOIN LATERAL (
      SELECT
        (SELECT sum(stocked.price::numeric * line.quantity) FROM all_lines line JOIN stocked ON stocked.id = line.item_id WHERE line.n = p.n) AS total,
        (SELECT min(line.item_id) FROM all_lines line WHERE line.n = p.n AND line.item_id NOT IN (SELECT id FROM stocked)) AS missing_item,
        short.item_id AS short_item, short.stock AS short_stock, short.quantity AS short_quantity,
        (SELECT jsonb_object_agg(line.item_id::text, CAST(s.stock ->> line.item_id::text AS integer) - line.quantity)
           FROM all_lines line WHERE line.n = p.n) AS stock_after
      FROM (VALUES (1)) AS one
      LEFT JOIN LATERAL (
        SELECT line.item_id, CAST(s.stock ->> line.item_id::text AS integer) AS stock, line.quantity
        FROM all_lines line
        WHERE line.n = p.n AND CAST(s.stock ->> line.item_id::text AS integer) < line.quantity
        ORDER BY line.item_id LIMIT 1
      ) AS short ON true
    ) AS o
    CROSS JOIN LATERAL (
      SELECT CASE
        WHEN p.prior_hash IS NOT NULL AND p.prior_hash = p.hash THEN 'replay'
        WHEN p.prior_hash IS NOT NULL THEN 'reused'
        WHEN s.balance IS NULL THEN 'no_user'
        WHEN p.route = 'POST /points/charge' AND s.balance + p.amount > :maxBalance THEN 'over_limit'
        WHEN p.route = 'POST /points/charge' THEN 'ok'
        WHEN o.missing_item IS NOT NULL THEN 'no_item'
        WHEN o.short_item IS NOT NULL THEN 'out_of_stock'
        WHEN s.balance < o.total THEN 'insufficient'
        ELSE 'ok'
      END AS outcome
    ) AS decided
  ),
  applied AS (
    SELECT * FROM steps WHERE step > 0
  ),
  new_orders AS (
    SELECT step, nextval(pg_get_serial_sequence('orders', 'id')) AS order_id
    FROM applied WHERE outcome = 'ok' AND route = 'POST /orders'
  ),
  new_history AS (
    SELECT step, nextval(pg_get_serial_sequence('point_history', 'id')) AS history_id
    FROM applied WHERE outcome = 'ok'
  ),
  final AS (
    SELECT balance, stock FROM applied ORDER BY step DESC LIMIT 1
  ),
  -- Every effect hangs off this fenced update: without its row, nothing moves.
  balanced AS (
    UPDATE users SET point_balance = final.balance, lock_fence = :fence
    FROM final
    WHERE users.id = :userId AND users.lock_fence <= :fence AND EXISTS (SELECT 1 FROM applied WHERE outcome = 'ok')
    RETURNING users.id
  ),
  taken AS (
    UPDATE items SET stock = CAST(final.stock ->> items.id::text AS integer)
    FROM final, stocked, balanced
    WHERE items.id = stocked.id AND CAST(final.stock ->> stocked.id::text AS integer) <> stocked.stock
  ),
  placed AS (
    INSERT INTO orders (id, user_id, status, total_amount) OVERRIDING SYSTEM VALUE
    SELECT new_orders.order_id, :userId, 'PAID', applied.total
    FROM new_orders JOIN applied USING (step) CROSS JOIN balanced
    RETURNING id
  ),
  placed_lines AS (
    INSERT INTO order_items (order_id, item_id, quantity, unit_price)
    SELECT new_orders.order_id, line.item_id, line.quantity, stocked.price
    FROM new_orders
    JOIN applied USING (step)
    CROSS JOIN LATERAL jsonb_to_recordset(applied.lines) AS line(item_id bigint, quantity integer)
    JOIN stocked ON stocked.id = line.item_id
    CROSS JOIN balanced
  ),
  history AS (
    INSERT INTO point_history (id, user_id, type, amount, balance_after, order_id) OVERRIDING SYSTEM VALUE
    SELECT new_history.history_id, :userId,
      CASE WHEN applied.route = 'POST /points/charge' THEN 'CHARGE' ELSE 'PAY' END,
      CASE WHEN applied.route = 'POST /points/charge' THEN applied.amount ELSE -CAST(applied.total AS bigint) END,
      applied.balance, new_orders.order_id
    FROM new_history JOIN applied USING (step) LEFT JOIN new_orders USING (step) CROSS JOIN balanced
  ),
  bodies AS (
    SELECT applied.step, applied.id, applied.route, applied.accepted_ms, applied.outcome, applied.key, applied.hash,
      CASE WHEN applied.outcome IN ('ok', 'replay') THEN 'DONE' ELSE 'REJECTED' END AS status,
      CASE applied.outcome
        WHEN 'ok' THEN CASE WHEN applied.route = 'POST /points/charge' THEN 200 ELSE 201 END
        WHEN 'replay' THEN applied.prior_status
        WHEN 'reused' THEN 422
        WHEN 'no_user' THEN 404
        WHEN 'no_item' THEN 404
        ELSE 409
      END AS status_code,
      CASE applied.outcome
        WHEN 'ok' THEN CASE WHEN applied.route = 'POST /points/charge'
          THEN json_build_object('userId', :userId, 'charged', applied.amount, 'balance', applied.balance, 'historyId', new_history.history_id)
          ELSE json_build_object(
            'orderId', new_orders.order_id,
            'userId', :userId,
            'status', 'PAID',
            'totalAmount', CAST(applied.total AS bigint),
            'balance', applied.balance,
            'items', (
              SELECT json_agg(json_build_object('itemId', line.item_id, 'quantity', line.quantity, 'unitPrice', stocked.price) ORDER BY line.line_no)
              FROM jsonb_to_recordset(applied.lines) AS line(item_id bigint, quantity integer, line_no integer)
              JOIN stocked ON stocked.id = line.item_id
            )
          ) END
        WHEN 'replay' THEN applied.prior_body
        ELSE json_build_object(
          'type', 'about:blank',
          'title', CASE applied.outcome
            WHEN 'reused' THEN 'Idempotency key reused'
            WHEN 'no_user' THEN 'Not found'
            WHEN 'no_item' THEN 'Not found'
            WHEN 'out_of_stock' THEN 'Out of stock'
            WHEN 'insufficient' THEN 'Insufficient balance'
            ELSE 'Balance limit exceeded' END,
          'status', CASE applied.outcome WHEN 'reused' THEN 422 WHEN 'no_user' THEN 404 WHEN 'no_item' THEN 404 ELSE 409 END,
          'code', CASE applied.outcome
            WHEN 'reused' THEN 'IDEMPOTENCY_KEY_REUSED'
            WHEN 'no_user' THEN 'NOT_FOUND'
            WHEN 'no_item' THEN 'NOT_FOUND'
            WHEN 'out_of_stock' THEN 'OUT_OF_STOCK'
            WHEN 'insufficient' THEN 'INSUFFICIENT_BALANCE'
            ELSE 'BALANCE_LIMIT_EXCEEDED' END,
          'detail', CASE applied.outcome
            WHEN 'reused' THEN 'this Idempotency-Key was used with a different request'
            WHEN 'no_user' THEN format('user %s has no points account', :userId)
            WHEN 'no_item' THEN format('item %s does not exist', applied.missing_item)
            WHEN 'out_of_stock' THEN format('item %s has %s in stock, %s ordered', applied.short_item, applied.short_stock, applied.short_quantity)
            WHEN 'insufficient' THEN format('balance %s is less than %s', applied.before, applied.total)
            ELSE format('balance %s plus %s would exceed %s', applied.before, applied.amount, :maxBalance) END,
          'instance', applied.id
        )
      END AS result
    FROM applied
    LEFT JOIN new_history USING (step)
    LEFT JOIN new_orders USING (step)
  ),
  recorded AS (
    INSERT INTO point_requests (request_id, user_id, route, status, status_code, result, accepted_at)
    SELECT id, :userId, route, status, status_code, result, to_timestamp(accepted_ms / 1000.0) FROM bodies
  ),
  remembered AS (
    INSERT INTO idempotency_keys (user_id, route, idempotency_key, request_hash, status_code, response_body)
    SELECT :userId, route, key, hash, status_code, result FROM bodies WHERE outcome = 'ok' AND key IS NOT NULL
  )
SELECT gate.state, gate.lock_fence,
  (SELECT coalesce(json_agg(request_id), '[]'::json) FROM known)::text AS known,
  (SELECT coalesce(json_agg(json_build_object('id', id, 'status', status, 'statusCode', status_code) ORDER BY step), '[]'::json) FROM bodies)::text AS outcomes
FROM gate`;
