import * as z from 'zod/mini';
import { idString } from '../platform/http';
import { orderRequest } from '../points/orders';
import { chargeRequest } from '../points/points';
import { popularItemsQuery } from '../popular-items/popular-items';
import { trendingQuery } from '../trending/trending';
import * as bodies from './schemas';

/**
 * The OpenAPI 3.1 description of the HTTP API, served at GET /openapi.json.
 *
 * Built from the schemas the handlers validate their input with (the charge
 * and order bodies, the popular-items query, the path ids) and from the
 * response schemas in ./schemas, which the e2e tests hold the live answers
 * to: neither side can change without the document changing with it.
 *
 * Longer than most modules: the document is one literal, its paths next to
 * the shared parts (errors, headers, parameters) they are built from.
 */

type JsonSchema = Record<string, unknown>;

/** A zod schema as JSON Schema 2020-12 (OpenAPI 3.1's dialect). */
function jsonSchema(schema: z.core.$ZodType, io: 'input' | 'output' = 'output'): JsonSchema {
  // Input side: what a client sends, before transforms (ids in a path are strings).
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const jsonContent = (schema: JsonSchema) => ({ 'application/json': { schema } });

const components = {
  LikeAdded: jsonSchema(bodies.likeChange(true)),
  LikeRemoved: jsonSchema(bodies.likeChange(false)),
  LikeStatus: jsonSchema(bodies.likeStatus),
  ReceivedLikes: jsonSchema(bodies.receivedLikes),
  Balance: jsonSchema(bodies.balance),
  ChargeRequest: jsonSchema(chargeRequest, 'input'),
  ChargeReceipt: jsonSchema(bodies.chargeReceipt),
  OrderRequest: {
    ...jsonSchema(orderRequest, 'input'),
    description: 'Each itemId may appear only once. Prices come from the database.',
  },
  OrderReceipt: jsonSchema(bodies.orderReceipt),
  QueuedAccepted: jsonSchema(bodies.queuedRequest),
  PointRequestStatus: jsonSchema(bodies.pointRequest),
  PopularItems: jsonSchema(bodies.popularItems),
  TrendingItems: jsonSchema(bodies.trendingItems),
  Health: jsonSchema(bodies.health),
  Problem: jsonSchema(bodies.problem),
  /** In AWS, API Gateway's JWT authorizer may refuse a token before any function runs. */
  GatewayUnauthorized: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] },
};

export type ComponentName = keyof typeof components;

const problemResponse = (description: string, extra: Record<string, unknown> = {}) => ({
  description,
  content: { 'application/problem+json': { schema: ref('Problem') } },
  ...extra,
});
const retryAfter = { 'Retry-After': { description: 'seconds to wait before retrying', schema: { type: 'integer', minimum: 0 } } };

const errors = {
  400: problemResponse('VALIDATION_ERROR: bad JSON, a wrong type, out of range, a bad id or Idempotency-Key'),
  401: {
    description: 'UNAUTHORIZED: no token, a malformed or expired token, a wrong issuer or audience, or a user-id claim that is not an id',
    content: {
      'application/problem+json': { schema: ref('Problem') },
      'application/json': { schema: ref('GatewayUnauthorized') },
    },
  },
  404: problemResponse('NOT_FOUND'),
  409: problemResponse(
    'LOCK_TIMEOUT (has Retry-After), IDEMPOTENCY_IN_PROGRESS, INSUFFICIENT_BALANCE, OUT_OF_STOCK or BALANCE_LIMIT_EXCEEDED',
    { headers: retryAfter },
  ),
  422: problemResponse('IDEMPOTENCY_KEY_REUSED: the same key with a different body'),
  500: problemResponse('INTERNAL'),
  503: problemResponse('DEPENDENCY_UNAVAILABLE: Redis or the database did not answer; nothing was changed', { headers: retryAfter }),
} as const;
type ErrorStatus = keyof typeof errors;
const pick = (...statuses: ErrorStatus[]) => Object.fromEntries(statuses.map((status) => [status, errors[status]]));

const pathId = (name: string) => ({ name, in: 'path', required: true, schema: jsonSchema(idString, 'input') });
const idempotencyKey = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  description: 'Scoped to the caller and the route: the same key with the same body replays the first success.',
  schema: { type: 'string', pattern: '^[!-~]{1,255}$' },
};
const preferAsync = {
  name: 'Prefer',
  in: 'header',
  required: false,
  description: '`respond-async` (RFC 7240): checked at once, then queued on a stream keyed by the caller and applied later, in the order accepted: 202 with the request id.',
  schema: { type: 'string' },
};
const accepted = (description: string) => ({
  description,
  content: jsonContent(ref('QueuedAccepted')),
  headers: {
    Location: { description: '/points/requests/{requestId}', schema: { type: 'string' } },
    'Preference-Applied': { description: '`respond-async`', schema: { type: 'string', enum: ['respond-async'] } },
    'Idempotent-Replayed': { description: '`true` when the key was accepted before with the same body (same requestId)', schema: { type: 'string', enum: ['true'] } },
  },
});
const replayed = { 'Idempotent-Replayed': { description: '`true` when this is the stored first answer', schema: { type: 'string', enum: ['true'] } } };
const queryShape = popularItemsQuery.shape;
const queryParameter = (name: keyof typeof queryShape, description: string) => ({
  name,
  in: 'query',
  required: false,
  description,
  // The default is applied after the string is read, so it is asked of the schema itself.
  schema: { ...jsonSchema(queryShape[name], 'input'), default: String(z.parse(queryShape[name], undefined)) },
});
// Its own defaults (both queries have a `limit`).
const trendingParameter = (name: keyof typeof trendingQuery.shape, description: string) => ({
  ...queryParameter('limit', description),
  name,
  schema: { ...jsonSchema(trendingQuery.shape[name], 'input'), default: String(z.parse(trendingQuery.shape[name], undefined)) },
});

const ok = (description: string, component: ComponentName, headers?: Record<string, unknown>) => ({
  description,
  content: jsonContent(ref(component)),
  ...(headers ? { headers } : {}),
});
const secured = { security: [{ jwt: [] }] };

/** The routes, as serverless.yml's httpApi events name them. */
const paths = {
  '/health': {
    get: {
      operationId: 'health',
      security: [],
      responses: { 200: ok('Redis and the database answer', 'Health'), 503: ok('a part is down', 'Health', retryAfter) },
    },
  },
  '/posts/{postId}/likes': {
    parameters: [pathId('postId')],
    post: { operationId: 'like', ...secured, responses: { 200: ok('liked (idempotent)', 'LikeAdded'), ...pick(400, 401, 404, 500, 503) } },
    delete: { operationId: 'unlike', ...secured, responses: { 200: ok('not liked (idempotent)', 'LikeRemoved'), ...pick(400, 401, 404, 500, 503) } },
    get: { operationId: 'likeStatus', ...secured, responses: { 200: ok("the post's likes", 'LikeStatus'), ...pick(400, 401, 404, 500, 503) } },
  },
  '/users/{userId}/received-likes': {
    parameters: [pathId('userId')],
    get: { operationId: 'receivedLikes', ...secured, responses: { 200: ok("likes on all the user's posts", 'ReceivedLikes'), ...pick(400, 401, 500, 503) } },
  },
  '/points': {
    get: { operationId: 'balance', ...secured, responses: { 200: ok("the caller's balance", 'Balance'), ...pick(401, 404, 500, 503) } },
  },
  '/points/charge': {
    post: {
      operationId: 'charge',
      ...secured,
      parameters: [idempotencyKey, preferAsync],
      requestBody: { required: true, content: jsonContent(ref('ChargeRequest')) },
      responses: {
        200: ok('charged', 'ChargeReceipt', replayed),
        202: accepted('queued (Prefer: respond-async); GET the Location for its outcome'),
        ...pick(400, 401, 404, 409, 422, 500, 503),
      },
    },
  },
  '/orders': {
    post: {
      operationId: 'pay',
      ...secured,
      parameters: [idempotencyKey, preferAsync],
      requestBody: { required: true, content: jsonContent(ref('OrderRequest')) },
      responses: {
        201: ok('paid with points', 'OrderReceipt', replayed),
        202: accepted('queued (Prefer: respond-async); GET the Location for its outcome'),
        ...pick(400, 401, 404, 409, 422, 500, 503),
      },
    },
  },
  '/points/requests/{requestId}': {
    parameters: [{ name: 'requestId', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } }],
    get: {
      operationId: 'pointRequest',
      ...secured,
      responses: {
        200: ok("a queued request's status: PENDING, DONE or REJECTED with the status code and body a direct request would have had", 'PointRequestStatus'),
        ...pick(400, 401, 404, 500, 503),
      },
    },
  },
  '/items/popular': {
    get: {
      operationId: 'popularItems',
      ...secured,
      parameters: [
        queryParameter('days', 'whole calendar days before today, in the business time zone'),
        queryParameter('limit', 'how many items'),
      ],
      responses: { 200: ok('best sellers by quantity in PAID orders; ties go to the lower itemId', 'PopularItems'), ...pick(400, 401, 500, 503) },
    },
  },
  '/items/trending': {
    get: {
      operationId: 'trendingItems',
      ...secured,
      parameters: [
        trendingParameter('minutes', 'the last whole minutes (UTC) and the current one'),
        trendingParameter('limit', 'how many items'),
      ],
      responses: {
        200: ok('best sellers by quantity in PAID orders of the window; ties go to the lower itemId', 'TrendingItems'),
        ...pick(400, 401, 500, 503),
      },
    },
  },
  '/openapi.json': {
    get: {
      operationId: 'openapi',
      security: [],
      responses: { 200: { description: 'this document', content: jsonContent({ type: 'object' }) } },
    },
  },
};

let built: Record<string, unknown> | undefined;

export function openApiDocument(): Record<string, unknown> {
  built ??= {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'Likes, points and popular items',
      version: '1.0.0',
      description: 'Likes, points and popular items over HTTP. The reference, with the rules behind every answer, is docs/api.md in the repository. Errors are RFC 9457 problem+json.',
    },
    servers: [{ url: '/' }],
    components: {
      schemas: components,
      securitySchemes: {
        jwt: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: "The user id is the claim USER_ID_CLAIM names (default `sub`); locally, `npm run token -- <userId>`.",
        },
      },
    },
    paths,
  };
  return built;
}

/** The response schemas by component name, for tests that check live answers. */
export const responseSchemas = bodies;
