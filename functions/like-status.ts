import { callerId } from '../lib/platform/auth';
import { NotFoundError } from '../lib/platform/errors';
import { httpHandler, json, pathId } from '../lib/platform/http';
import { likeStatus, receivedLikes } from '../lib/likes/likes';

/**
 * GET /posts/{postId}/likes: the post's like count and whether the caller likes it.
 * GET /users/{userId}/received-likes: likes received on all of a user's posts.
 * Both read-only routes share one function (one warm instance, one cache).
 */
export const handler = httpHandler(async (event) => {
  const callerUserId = callerId(event);
  switch (event.routeKey) {
    case 'GET /posts/{postId}/likes':
      return json(200, await likeStatus(pathId(event, 'postId'), callerUserId));
    case 'GET /users/{userId}/received-likes':
      return json(200, await receivedLikes(pathId(event, 'userId')));
    default:
      throw new NotFoundError(`no route ${event.routeKey}`);
  }
});
