import { callerId } from '../lib/auth';
import { httpHandler, json, pathId } from '../lib/http';
import { unlike } from '../lib/likes';

/** DELETE /posts/{postId}/likes: the caller takes back a like (idempotent). */
export const handler = httpHandler(async (event) => {
  const userId = callerId(event);
  const postId = pathId(event, 'postId');
  return json(200, await unlike(postId, userId));
});
