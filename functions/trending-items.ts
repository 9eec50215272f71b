import { callerId } from '../lib/platform/auth';
import { httpHandler, parseQuery } from '../lib/platform/http';
import { trendingItemsJson, trendingQuery } from '../lib/trending/trending';

/**
 * GET /items/trending?minutes=&limit=: the same answer for every caller, but
 * a token is still required. The body is sent as the JSON text the service
 * built (the headers of lib/platform/http's json()).
 */
export const handler = httpHandler(async (event) => {
  callerId(event);
  const query = parseQuery(event, trendingQuery);
  return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: await trendingItemsJson(query) };
});
