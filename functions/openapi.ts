import { openApiDocument } from '../lib/openapi/document';
import { httpHandler, json } from '../lib/platform/http';

/** GET /openapi.json (no token): the OpenAPI 3.1 description of this API. */
export const handler = httpHandler(async () => json(200, openApiDocument()));
