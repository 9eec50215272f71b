-- Popular items (lib/popular-items): a daily sales rollup, so a 30-day
-- ranking reads at most 30 small per-day tables instead of every order line
-- of the window.
--
-- Keyed by the business time zone as well as the date: BUSINESS_TIMEZONE is a
-- setting, and a day in Seoul is not a day in New York, so one zone's rollup
-- can never answer for another.
--
-- A day's rows are trusted only while its row in popular_rollup_days exists.
-- That row is written only for a day already over by the database's clock
-- (lib/popular-items/rollup.ts), and the triggers below delete it whenever a
-- write touches an order of that day (a late insert, an edited status, a
-- deleted line, a TRUNCATE), so a day is then counted from the orders again
-- until it is recomputed. The rollup itself is never edited by a trigger:
-- the payment path only pays for a lookup in this small table, which finds
-- nothing because a new order belongs to today, never rolled up.

CREATE TABLE IF NOT EXISTS popular_rollup_days (
  time_zone     text NOT NULL,
  business_date date NOT NULL,
  -- The day as instants, so a trigger can match an order's created_at
  -- without knowing the zone's rules.
  starts_at     timestamptz NOT NULL,
  ends_at       timestamptz NOT NULL,
  computed_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (time_zone, business_date)
);

CREATE TABLE IF NOT EXISTS daily_item_sales (
  time_zone     text NOT NULL,
  business_date date NOT NULL,
  item_id       bigint NOT NULL,
  quantity      bigint NOT NULL CHECK (quantity > 0),
  -- Item before date, quantity included: the ranking sums a candidate
  -- item's window in one index-only range scan of this key; per-day reads
  -- use the index below.
  PRIMARY KEY (time_zone, item_id, business_date) INCLUDE (quantity)
);

-- A day's best sellers in ranking order: the ranking reads only the top of
-- each day (the pruned ranking in lib/popular-items/ranking.ts); replacing
-- a day reads its rows through it too.
CREATE INDEX IF NOT EXISTS daily_item_sales_rank_idx
  ON daily_item_sales (time_zone, business_date, quantity DESC, item_id);

-- Forgets every rolled-up day that contains one of these instants.
CREATE OR REPLACE FUNCTION popular_rollup_forget(instants timestamptz[]) RETURNS void
LANGUAGE sql AS $$
  DELETE FROM popular_rollup_days d
  WHERE EXISTS (SELECT 1 FROM unnest(instants) AS t (at) WHERE t.at >= d.starts_at AND t.at < d.ends_at)
$$;

CREATE OR REPLACE FUNCTION popular_rollup_forget_new_orders() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM popular_rollup_forget(ARRAY(SELECT created_at FROM new_orders));
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION popular_rollup_forget_old_orders() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM popular_rollup_forget(ARRAY(SELECT created_at FROM old_orders));
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION popular_rollup_forget_changed_orders() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM popular_rollup_forget(ARRAY(SELECT created_at FROM old_orders UNION SELECT created_at FROM new_orders));
  RETURN NULL;
END
$$;

-- A line counts on its order's day; a line inserted before its order is
-- caught by the order's insert trigger instead.
CREATE OR REPLACE FUNCTION popular_rollup_forget_new_lines() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM popular_rollup_forget(ARRAY(SELECT o.created_at FROM orders o WHERE o.id IN (SELECT order_id FROM new_lines)));
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION popular_rollup_forget_old_lines() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM popular_rollup_forget(ARRAY(SELECT o.created_at FROM orders o WHERE o.id IN (SELECT order_id FROM old_lines)));
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION popular_rollup_forget_changed_lines() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM popular_rollup_forget(ARRAY(
    SELECT o.created_at FROM orders o
    WHERE o.id IN (SELECT order_id FROM old_lines UNION SELECT order_id FROM new_lines)));
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION popular_rollup_forget_all() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM popular_rollup_days;
  RETURN NULL;
END
$$;

-- Statement-level with transition tables: one lookup per statement, not per
-- row. PostgreSQL allows a transition table on a trigger of one event only,
-- hence one trigger per event.
DROP TRIGGER IF EXISTS popular_rollup_orders_insert ON orders;
CREATE TRIGGER popular_rollup_orders_insert AFTER INSERT ON orders
  REFERENCING NEW TABLE AS new_orders FOR EACH STATEMENT EXECUTE FUNCTION popular_rollup_forget_new_orders();
DROP TRIGGER IF EXISTS popular_rollup_orders_update ON orders;
CREATE TRIGGER popular_rollup_orders_update AFTER UPDATE ON orders
  REFERENCING OLD TABLE AS old_orders NEW TABLE AS new_orders FOR EACH STATEMENT EXECUTE FUNCTION popular_rollup_forget_changed_orders();
DROP TRIGGER IF EXISTS popular_rollup_orders_delete ON orders;
CREATE TRIGGER popular_rollup_orders_delete AFTER DELETE ON orders
  REFERENCING OLD TABLE AS old_orders FOR EACH STATEMENT EXECUTE FUNCTION popular_rollup_forget_old_orders();
DROP TRIGGER IF EXISTS popular_rollup_orders_truncate ON orders;
CREATE TRIGGER popular_rollup_orders_truncate AFTER TRUNCATE ON orders
  FOR EACH STATEMENT EXECUTE FUNCTION popular_rollup_forget_all();

DROP TRIGGER IF EXISTS popular_rollup_lines_insert ON order_items;
CREATE TRIGGER popular_rollup_lines_insert AFTER INSERT ON order_items
  REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION popular_rollup_forget_new_lines();
DROP TRIGGER IF EXISTS popular_rollup_lines_update ON order_items;
CREATE TRIGGER popular_rollup_lines_update AFTER UPDATE ON order_items
  REFERENCING OLD TABLE AS old_lines NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION popular_rollup_forget_changed_lines();
DROP TRIGGER IF EXISTS popular_rollup_lines_delete ON order_items;
CREATE TRIGGER popular_rollup_lines_delete AFTER DELETE ON order_items
  REFERENCING OLD TABLE AS old_lines FOR EACH STATEMENT EXECUTE FUNCTION popular_rollup_forget_old_lines();
DROP TRIGGER IF EXISTS popular_rollup_lines_truncate ON order_items;
CREATE TRIGGER popular_rollup_lines_truncate AFTER TRUNCATE ON order_items
  FOR EACH STATEMENT EXECUTE FUNCTION popular_rollup_forget_all();
