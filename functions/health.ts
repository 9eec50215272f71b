import { checkHealth } from '../lib/platform/health';
import { httpHandler, json } from '../lib/platform/http';

/** GET /health (no token): 200 when Redis and the database answer, else 503. */
export const handler = httpHandler(async () => {
  const report = await checkHealth();
  const healthy = report.redis === 'ok' && report.database === 'ok';
  return json(healthy ? 200 : 503, report, healthy ? {} : { 'retry-after': '1' });
});
