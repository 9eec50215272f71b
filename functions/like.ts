import { callerId } from '../lib/platform/auth';
import { httpHandler, json, pathId } from '../lib/platform/http';
import { like } from '../lib/likes/likes';

/** POST /posts/{postId}/likes: the caller likes the post (idempotent). */
export const handler = httpHandler(async (event) => {
  const userId = callerId(event);
  const postId = pathId(event, 'postId');
  return json(200, await like(postId, userId));
});
