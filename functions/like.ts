import { callerId } from '../lib/auth';
import { httpHandler, json, pathId } from '../lib/http';
import { like } from '../lib/likes';

/** POST /posts/{postId}/likes: the caller likes the post (idempotent). */
export const handler = httpHandler(async (event) => {
  const userId = callerId(event);
  const postId = pathId(event, 'postId');
  return json(200, await like(postId, userId));
});
