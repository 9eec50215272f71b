import * as z from 'zod/mini';
import { callerId } from '../lib/platform/auth';
import { httpHandler, parseQuery } from '../lib/platform/http';
import { DEFAULT_QUERY, MAX_DAYS, MAX_LIMIT, popularItemsJson } from '../lib/popular-items/popular-items';

/** A plain decimal integer 1 .. max (no sign, no leading zero, no exponent), or the default when absent. */
const count = (max: number, fallback: number) =>
  z._default(
    z
      .pipe(z.string().check(z.regex(/^[1-9][0-9]*$/, `must be an integer from 1 to ${max}`)), z.transform(Number))
      .check(z.refine((n) => n <= max, `must be an integer from 1 to ${max}`)),
    fallback,
  );

/** Exported for lib/openapi, which documents the query from this very schema. */
export const querySchema = z.object({
  days: count(MAX_DAYS, DEFAULT_QUERY.days),
  limit: count(MAX_LIMIT, DEFAULT_QUERY.limit),
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
