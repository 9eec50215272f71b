import { callerId } from '../lib/platform/auth';
import { httpHandler, json, pathId } from '../lib/platform/http';
import { unlike } from '../lib/likes/likes';

/** DELETE /posts/{postId}/likes: the caller takes back a like (idempotent). */
export const handler = httpHandler(async (event) => {
  const userId = callerId(event);
  const postId = pathId(event, 'postId');
  return json(200, await unlike(postId, userId));
});
