import { callerId } from '../lib/platform/auth';
import { httpHandler, json, pathId } from '../lib/platform/http';
import { like } from '../lib/likes/likes';
import { metric } from '../lib/platform/metrics';

/** POST /posts/{postId}/likes: the caller likes the post (idempotent). */
export const handler = httpHandler(async (event) => {
  const userId = callerId(event);
  const postId = pathId(event, 'postId');
  const result = await like(postId, userId);
  if (result.changed) metric('LikeAdded');
  return json(200, result);
});
