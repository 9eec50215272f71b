import { useTestDatabase } from '../support/database';

/**
 * The tables behave as docs/api.md's "Data tables" promises: outside
 * tests insert, delete and truncate them directly, in any order.
 */

const t = useTestDatabase();

it('takes order lines as plain rows: before their order, repeated per item, and orders truncate alone', async () => {
  await t.pg.query("INSERT INTO items (id, name, price, stock) VALUES (1, 'a', 100, 5)");
  await t.pg.query('INSERT INTO order_items (order_id, item_id, quantity, unit_price) VALUES (424242, 1, 1, 100), (424242, 1, 2, 100)');
  const { rows } = await t.pg.query("INSERT INTO orders (user_id, status, total_amount) VALUES (1, 'PAID', 300) RETURNING id");
  expect(Number(rows[0].id)).toBeGreaterThan(0);
  await t.pg.query('TRUNCATE orders');
  await t.pg.query('TRUNCATE order_items');
  await t.pg.query('TRUNCATE users, posts, items');
});
