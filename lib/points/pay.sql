-- PAY: pays for an order with points under the point lock, in one statement
-- (lib/points/orders.ts runs it through lib/points/balance.ts). Parameters
-- userId, lines (JSON, item_id, quantity and line_no per line), fence,
-- requestId, sentAtMs, cutoffMs, and route, key and requestHash of the
-- Idempotency-Key (key null without one). Replies with one row, the verdict
-- (outcome, the columns of lib/points/balance.ts Verdict, the total and what
-- was missing or short) and the receipt when the order was written.
--
-- It starts and ends as every balance statement does (prior, account, the
-- first outcomes of verdict; remembered, recorded): see charge.sql for what
-- they mean; tests/unit/statements.test.ts checks the two agree.
--
-- Prices and stock come from the locked items rows, never from the client.
-- Every write hangs off paid, the fenced balance update: without its row, no
-- stock is taken and no order, history or reply is written; the CHECKs
-- (stock >= 0, balance >= 0) stay the last line of defense. The receipt also
-- carries the minute of the order (as the database counts minutes from
-- created_at) for trending; it is not part of the answer.
WITH prior AS (
    SELECT request_hash, status_code, response_body
    FROM idempotency_keys
    WHERE user_id = :userId AND route = :route AND idempotency_key = CAST(:key AS text)
  ),
  account AS (
    SELECT point_balance, lock_fence FROM users WHERE id = :userId FOR UPDATE
  ),
  lines AS (
    SELECT * FROM jsonb_to_recordset(CAST(:lines AS jsonb)) AS line(item_id bigint, quantity integer, line_no integer)
  ),
  -- Locked in item-id order, so orders sharing items queue instead of deadlocking.
  stocked AS (
    SELECT id, price, stock FROM items WHERE id IN (SELECT item_id FROM lines) ORDER BY id FOR UPDATE
  ),
  priced AS (
    SELECT lines.*, stocked.price, stocked.stock FROM lines LEFT JOIN stocked ON stocked.id = lines.item_id
  ),
  missing AS (
    SELECT min(item_id) AS item_id FROM priced WHERE price IS NULL
  ),
  shortfall AS (
    SELECT item_id, stock, quantity FROM priced WHERE stock < quantity ORDER BY item_id LIMIT 1
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
      WHEN missing.item_id IS NOT NULL THEN 'no_item'
      WHEN shortfall.item_id IS NOT NULL THEN 'out_of_stock'
      WHEN account.point_balance < cost.total THEN 'insufficient'
      ELSE 'ok'
    END AS outcome,
    account.point_balance AS balance, account.lock_fence, prior.*, cost.total, missing.item_id AS missing_item,
    shortfall.item_id AS short_item, shortfall.stock AS short_stock, shortfall.quantity AS short_quantity
    FROM (SELECT sum(price::numeric * quantity) AS total FROM priced) AS cost
    CROSS JOIN missing
    LEFT JOIN shortfall ON true
    LEFT JOIN account ON true
    LEFT JOIN prior ON true
  ),
  paid AS (
    UPDATE users SET point_balance = point_balance - verdict.total, lock_fence = :fence
    FROM verdict
    WHERE users.id = :userId AND users.lock_fence <= :fence AND verdict.outcome = 'ok'
    RETURNING users.point_balance
  ),
  taken AS (
    UPDATE items SET stock = items.stock - lines.quantity
    FROM lines, paid
    WHERE items.id = lines.item_id
  ),
  placed AS (
    INSERT INTO orders (user_id, status, total_amount)
    SELECT :userId, 'PAID', verdict.total FROM verdict, paid
    RETURNING id, total_amount, created_at
  ),
  placed_lines AS (
    INSERT INTO order_items (order_id, item_id, quantity, unit_price)
    SELECT placed.id, priced.item_id, priced.quantity, priced.price FROM placed, priced
  ),
  history AS (
    INSERT INTO point_history (user_id, type, amount, balance_after, order_id)
    SELECT :userId, 'PAY', -placed.total_amount, paid.point_balance, placed.id FROM placed, paid
  ),
  receipt AS (
    SELECT json_build_object(
      'orderId', placed.id,
      'userId', :userId,
      'status', 'PAID',
      'totalAmount', placed.total_amount,
      'balance', paid.point_balance,
      'paidMinute', floor(extract(epoch FROM placed.created_at) / 60)::bigint,
      'items', (
        SELECT json_agg(json_build_object('itemId', item_id, 'quantity', quantity, 'unitPrice', price) ORDER BY line_no)
        FROM priced
      )
    ) AS body
    FROM placed, paid
  ),
  remembered AS (
    INSERT INTO idempotency_keys (user_id, route, idempotency_key, request_hash, status_code, response_body)
    SELECT :userId, :route, CAST(:key AS text), CAST(:requestHash AS text), 201, receipt.body
    FROM receipt
    WHERE CAST(:key AS text) IS NOT NULL
  ),
  recorded AS (
    INSERT INTO balance_requests (request_id, user_id, status_code, response_body)
    SELECT CAST(:requestId AS uuid), :userId, 201, receipt.body FROM receipt
  )
SELECT verdict.*, receipt.body FROM verdict LEFT JOIN receipt ON true
