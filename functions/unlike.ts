import { callerId } from '../lib/platform/auth';
import { httpHandler, json, pathId } from '../lib/platform/http';
import { unlike } from '../lib/likes/likes';
import { metric } from '../lib/platform/metrics';

/** DELETE /posts/{postId}/likes: the caller takes back a like (idempotent). */
export const handler = httpHandler(async (event) => {
  const userId = callerId(event);
  const postId = pathId(event, 'postId');
  const result = await unlike(postId, userId);
  if (result.changed) metric('LikeRemoved');
  return json(200, result);
});
