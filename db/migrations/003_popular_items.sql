-- Popular items (lib/popular-items): the ranking reads the PAID orders of a
-- few whole days. This partial index finds them by created_at without
-- touching other statuses, and carries the id for the join, so a large orders
-- table costs only the window's entries. order_items is then reached through
-- its primary key (order_id, item_id); a covering index with the quantity
-- would save heap reads but cost every payment a write, for a query the cache
-- runs about once per variant per day.
-- IF NOT EXISTS: on a table already large, build it first by hand with
-- CREATE INDEX CONCURRENTLY (migrations run in a transaction, which cannot).
CREATE INDEX IF NOT EXISTS orders_paid_created_at_idx ON orders (created_at) INCLUDE (id) WHERE status = 'PAID';
