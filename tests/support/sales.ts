import type { Client } from 'pg';

/** An order of `quantity` × item at noon yesterday in `timeZone`, by PostgreSQL's calendar: counted by popular items today. */
export async function sellYesterday(pg: Client, itemId: number, quantity: number, timeZone = 'Asia/Seoul'): Promise<void> {
  await pg.query(
    `WITH o AS (
       INSERT INTO orders (user_id, total_amount, created_at)
       VALUES (1, 0, ((now() AT TIME ZONE $3)::date - 1 + time '12:00') AT TIME ZONE $3)
       RETURNING id)
     INSERT INTO order_items (order_id, item_id, quantity, unit_price) SELECT id, $1, $2, 0 FROM o`,
    [itemId, quantity, timeZone],
  );
}
