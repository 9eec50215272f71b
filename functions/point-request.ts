import { callerId } from '../lib/platform/auth';
import { httpHandler, json, validate } from '../lib/platform/http';
import { requestIdPath } from '../lib/points/queue/record';
import { getPointRequest } from '../lib/points/queue/status';

/** GET /points/requests/{requestId}: 200 { requestId, status, statusCode?, result? } for the caller's own queued request, else 404. */
export const handler = httpHandler(async (event) => {
  const userId = callerId(event);
  const requestId = validate(requestIdPath, event.pathParameters?.requestId, 'path requestId');
  return json(200, await getPointRequest(userId, requestId));
});
