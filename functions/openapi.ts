import { httpHandler, json } from '../lib/platform/http';
// Generated from lib/openapi/document (the handlers' own schemas); the unit
// test tests/unit/openapi.test.ts fails when it no longer matches them. A
// committed file instead of building it here keeps zod's JSON Schema
// generator and every feature's code out of this function's bundle.
import document from '../lib/openapi/openapi.json';

/** GET /openapi.json (no token): the OpenAPI 3.1 description of this API. */
export const handler = httpHandler(async () => json(200, document));
