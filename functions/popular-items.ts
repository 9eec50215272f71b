import * as z from 'zod/mini';
import { callerId } from '../lib/platform/auth';
import { httpHandler, parseQuery, queryCount } from '../lib/platform/http';
import { DEFAULT_QUERY, MAX_DAYS, MAX_LIMIT, popularItemsJson } from '../lib/popular-items/popular-items';

/** Exported for lib/openapi, which documents the query from this very schema. */
export const querySchema = z.object({
  days: queryCount(MAX_DAYS, DEFAULT_QUERY.days),
  limit: queryCount(MAX_LIMIT, DEFAULT_QUERY.limit),
});

/**
 * GET /items/popular?days=&limit=: the same answer for every caller, but a
 * token is still required. The body comes from the cache as JSON text, sent
 * as it is (the headers of lib/platform/http's json()): encoding it again
 * would cost more than the Redis read.
 */
export const handler = httpHandler(async (event) => {
  callerId(event);
  const query = parseQuery(event, querySchema);
  return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: await popularItemsJson(query) };
});
