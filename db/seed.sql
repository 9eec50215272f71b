-- A small demo data set for `npm start` on an empty database (never applied
-- anywhere else). Try: npm run token -- 1, then like post 1 or buy item 1.
--
-- seedIfEmpty (db/migrate.ts) runs this in one transaction whose TimeZone is
-- the business time zone, so current_date is the business "today" and every
-- demo order falls on one of the whole days before it: GET /items/popular
-- counts exactly those days, and shows something on the very first start.
INSERT INTO users (id, name, point_balance) VALUES
  (1, 'Alice', 50000),
  (2, 'Bob', 10000),
  (3, 'Carol', 0);

INSERT INTO posts (id, author_id, title) VALUES
  (1, 1, 'Hello from Alice'),
  (2, 1, 'Alice again'),
  (3, 2, 'Bob''s first post');

INSERT INTO items (id, name, price, stock) VALUES
  (1, 'Americano', 4500, 1000),
  (2, 'Latte', 5000, 1000),
  (3, 'Croissant', 3800, 200),
  (4, 'Bagel', 3200, 200),
  (5, 'Cheesecake', 6500, 50);

-- One order per line, on the day `days_ago` before today at a distinct time
-- of that day, which is also how each order finds its line again.
WITH lines (n, days_ago, user_id, item_id, quantity) AS (
  VALUES
    (1, 1, 2, 1, 3), (2, 1, 3, 2, 2), (3, 1, 1, 3, 1),
    (4, 2, 2, 1, 2), (5, 2, 1, 5, 1), (6, 2, 3, 2, 1),
    (7, 3, 1, 1, 2), (8, 3, 2, 4, 2), (9, 3, 3, 3, 2),
    (10, 4, 2, 2, 3), (11, 5, 1, 1, 1), (12, 6, 3, 5, 2),
    (13, 7, 2, 4, 1)
),
priced AS (
  SELECT lines.*, items.price,
         CAST((current_date - lines.days_ago) + time '09:00' + lines.n * interval '37 minutes' AS timestamptz) AS paid_at
  FROM lines JOIN items ON items.id = lines.item_id
),
paid AS (
  INSERT INTO orders (user_id, status, total_amount, created_at)
  SELECT user_id, 'PAID', price * quantity, paid_at FROM priced ORDER BY n
  RETURNING id, created_at
)
INSERT INTO order_items (order_id, item_id, quantity, unit_price)
SELECT paid.id, priced.item_id, priced.quantity, priced.price
FROM paid JOIN priced ON priced.paid_at = paid.created_at;

-- Likes already synced to PostgreSQL (docs/api.md, "Durable likes"): the first
-- request for a post rebuilds its count from here. Only where the table exists.
DO $$
BEGIN
  IF to_regclass('post_likes') IS NOT NULL THEN
    INSERT INTO post_likes (post_id, user_id) VALUES (1, 2), (1, 3), (2, 3), (3, 1)
    ON CONFLICT DO NOTHING;
  END IF;
END $$;
