import { config } from 'zod/mini';
// The English locale alone: zod/mini's `locales` namespace would bundle every language.
import { en } from 'zod/locales';

/**
 * zod/mini loads no locale, so every issue would read "Invalid input" and a
 * 400's detail would not say what is wrong. Imported for its effect by the
 * modules that validate (http, config): the messages are zod classic's.
 */
config(en());
