/**
 * npm run token -- <userId>: prints a token that the local stack accepts for
 * that user (stage local checks claims, not signatures: lib/platform/auth). Valid for
 * 24 hours. Use it as `Authorization: Bearer <token>`.
 */
import { idString } from '../lib/platform/http';
import { createLocalToken } from '../lib/platform/local-token';

const args = process.argv.slice(2);
const userId = args.length === 1 ? idString.safeParse(args[0]) : undefined;

if (!userId?.success) {
  console.error('usage: npm run token -- <userId>   (userId: an integer 1 .. 9007199254740991, plain digits)');
  process.exit(2);
}

createLocalToken(userId.data).then((token) => console.log(token));
