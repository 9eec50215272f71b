import { callerId } from '../lib/platform/auth';
import { httpHandler, parseQuery } from '../lib/platform/http';
import { popularItemsJson, popularItemsQuery } from '../lib/popular-items/popular-items';

/**
 * GET /items/popular?days=&limit=: the same answer for every caller, but a
 * token is still required. The body comes from the cache as JSON text, sent
 * as it is (the headers of lib/platform/http's json()): encoding it again
 * would cost more than the Redis read.
 */
export const handler = httpHandler(async (event) => {
  callerId(event);
  const query = parseQuery(event, popularItemsQuery);
  return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: await popularItemsJson(query) };
});
